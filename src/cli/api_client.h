// Shared plumbing of the commands that talk to a running server: server URL, token and
// trust bundle from flags or TRUSTWARDEN_SERVER / TRUSTWARDEN_TOKEN / TRUSTWARDEN_BUNDLE.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "net/https_client.h"
#include "nlohmann/json.hpp"

namespace tw::cli {

struct ClientFlags {
  std::string server, token, bundle;
  bool no_token = false;  // send no token even when TRUSTWARDEN_TOKEN is set
};

// Adds --server, --token and (unless `with_bundle` is false: the command's own --bundle
// means another bundle) --bundle to `cmd`.
void AddClientFlags(CLI::App* cmd, ClientFlags* flags, bool with_bundle = true);

// Where the commands look for the trust bundle by default (what `bootstrap` writes).
inline constexpr char kDefaultBundle[] = "./trustwarden-data/bundle.json";

// `flag` when given, else the environment variable `env` when set and not empty, else
// `fallback`.
std::string FlagOrEnv(const std::string& flag, const char* env, absl::string_view fallback);

// Connects to the server, trusting the bundle's CA certificates (JSON or PEM), with an
// optional client certificate chain and key (PEM) for mTLS.
absl::StatusOr<std::unique_ptr<net::HttpsClient>> Connect(
    const ClientFlags& flags, const std::string& chain_pem = "", const std::string& key_pem = "",
    absl::Duration timeout = absl::Seconds(30));

// The Authorization header of the flags' token, if any.
net::Headers AuthHeaders(const ClientFlags& flags);
// Sends `body` (if not null) with the flags' token (if any) and returns the JSON reply;
// an API error becomes a Status carrying the server's code and message.
absl::StatusOr<nlohmann::json> CallJson(net::HttpsClient& client, const ClientFlags& flags,
                                        absl::string_view method, absl::string_view target,
                                        const nlohmann::json* body = nullptr);

// A request target: `path`, then `segment` percent-encoded as one more path segment when
// given, then the non-empty parameters percent-encoded in order.
std::string Target(absl::string_view path,
                   const std::vector<std::pair<std::string, std::string>>& params = {},
                   absl::string_view segment = "");
// The trust bundle's X.509 authorities as PEM.
absl::StatusOr<std::string> BundlePem(const ClientFlags& flags);

}  // namespace tw::cli
