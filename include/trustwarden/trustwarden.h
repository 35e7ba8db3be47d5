// The TrustWarden SDK: per-instance SPIFFE identities for AI agents, scope-checked and
// ledger-recorded calls, pushed revocation, verification and mTLS for resource owners.
#pragma once

#include "trustwarden/agent_identity.h"
#include "trustwarden/connection.h"
#include "trustwarden/error.h"
#include "trustwarden/tls.h"
#include "trustwarden/verifier.h"
