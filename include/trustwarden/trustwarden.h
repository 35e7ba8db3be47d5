// The TrustWarden SDK: per-instance SPIFFE identities for AI agents, scope-checked and
// ledger-recorded calls.
#pragma once

#include "trustwarden/agent_identity.h"
#include "trustwarden/error.h"
