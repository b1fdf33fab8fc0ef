# idprime_add_plugin(NAME SOURCES src... [PKG pkg-config-module...])
#
# Builds idprime-NAME.so as a MODULE that sees only the plugin ABI header
# and its store's client library, exporting one symbol.
function(idprime_add_plugin name)
  cmake_parse_arguments(P "" "" "SOURCES;PKG" ${ARGN})
  set(target idprime-${name})
  add_library(${target} MODULE ${P_SOURCES})
  set_target_properties(${target} PROPERTIES
    PREFIX ""
    LIBRARY_OUTPUT_DIRECTORY ${IDPRIME_PLUGIN_BUILD_DIR}
    C_VISIBILITY_PRESET hidden)
  target_include_directories(${target} PRIVATE ${PROJECT_SOURCE_DIR}/framework/include)
  target_link_options(${target} PRIVATE ${IDPRIME_NO_UNDEFINED})
  foreach(pkg IN LISTS P_PKG)
    string(MAKE_C_IDENTIFIER "${pkg}" var)
    pkg_check_modules(PC_${var} REQUIRED IMPORTED_TARGET ${pkg})
    target_link_libraries(${target} PRIVATE PkgConfig::PC_${var})
  endforeach()
  install(TARGETS ${target} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}/idprime)
endfunction()
