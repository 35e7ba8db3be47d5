// A listening TCP socket on 127.0.0.1 at a port the system picks, for tests' servers.
#pragma once

#include <cstdint>

namespace tw::base {

// The socket's descriptor (the caller closes it), its port in `port`. Aborts when none can
// be made: a test cannot run without one.
int ListenOnLoopback(uint16_t* port, int backlog = 8);

}  // namespace tw::base
