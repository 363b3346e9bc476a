// The one translation unit that builds doctest's runner; every tests/test_*.cpp links it.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
