-- metaprime0.lua - no batching (metaprime=0): every ID is one store round
-- trip, the legacy INCR behaviour every batching rule is measured against.
-- Nothing is ever wasted or at risk; every call waits.
return {
  defaults = { metaprime = 0 },
}
