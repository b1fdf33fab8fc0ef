/* idprime-serve-test: `idprime serve` for the tests, until the idprime
 * command has the subcommand. */
#include "serve.h"

int main(int argc, char **argv)
{
    argv[0] = (char *)"idprime serve";
    return serve_main(argc, argv);
}
