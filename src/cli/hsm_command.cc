// `trustwarden hsm init --module PATH --token LABEL [--pin-file F]`: creates the server's
// three keys (X.509 CA, JWT-SVID, ledger) inside a PKCS#11 token, as sensitive,
// non-extractable token objects, and prints the pkcs11: URIs `server --ca-key --jwt-key
// --ledger-key` (or the config file's [keys]) take.
#include <iostream>

#include "absl/strings/str_cat.h"
#include "cli/command.h"
#include "cli/output.h"
#include "crypto/pkcs11_signer.h"

namespace tw::cli {
namespace {

using nlohmann::json;

struct HsmFlags {
  std::string module, token, pin_file, prefix = "trustwarden", key_type = "ec-p256";
  bool json = false;
};

int HsmInit(const HsmFlags& f) {
  crypto::Pkcs11Uri token{.module_path = f.module, .token = f.token};
  if (!f.pin_file.empty()) token.pin_source = "file:" + f.pin_file;
  const crypto::KeyType type = f.key_type == "ec-p384"    ? crypto::KeyType::kEcP384
                               : f.key_type == "rsa-3072" ? crypto::KeyType::kRsa
                                                          : crypto::KeyType::kEcP256;
  struct Made {
    const char* role;
    std::string label;
    crypto::KeyType type;
  };
  // The ledger key is P-256 whatever the CA's curve (docs/ledger.md).
  const Made keys[] = {{"ca_key", f.prefix + "-ca", type},
                       {"jwt_key", f.prefix + "-jwt", type},
                       {"ledger_key", f.prefix + "-ledger", crypto::KeyType::kEcP256}};
  json out = json::object();
  for (const Made& k : keys) {
    auto uri = crypto::GeneratePkcs11Key(token, k.label, k.type);
    if (!uri.ok()) {
      if (!out.empty()) std::cerr << "created before the failure: " << out.dump() << "\n";
      return Fail(uri.status());
    }
    out[k.role] = *uri;
  }
  if (f.json) {
    PrintJson(out);
    return 0;
  }
  std::cout << "created in token " << f.token << " (sensitive, never extractable):\n"
            << "  ca key      " << out["ca_key"].get<std::string>() << "\n"
            << "  jwt key     " << out["jwt_key"].get<std::string>() << "\n"
            << "  ledger key  " << out["ledger_key"].get<std::string>() << "\n"
            << "start the server with them:\n"
            << "  trustwarden server --ca-key '" << out["ca_key"].get<std::string>()
            << "' \\\n      --jwt-key '" << out["jwt_key"].get<std::string>()
            << "' \\\n      --ledger-key '" << out["ledger_key"].get<std::string>() << "'\n"
            << (f.pin_file.empty() ? "(with the PIN in TRUSTWARDEN_PKCS11_PIN)\n" : "");
  return 0;
}

}  // namespace

void RegisterHsmCommand(CLI::App& app, Action* action) {
  CLI::App* hsm = app.add_subcommand("hsm", "Keys in a PKCS#11 token (an HSM, SoftHSM2)");
  hsm->require_subcommand(1);
  auto f = std::make_shared<HsmFlags>();
  CLI::App* init = hsm->add_subcommand(
      "init", "Create the CA, JWT and ledger keys in a token; print their pkcs11: URIs");
  init->add_option("--module", f->module, "The token's PKCS#11 library (.so)")->required();
  init->add_option("--token", f->token, "The token's label")->required();
  init->add_option("--pin-file", f->pin_file,
                   "A file holding the user PIN (default $TRUSTWARDEN_PKCS11_PIN); the URIs "
                   "name it as pin-source");
  init->add_option("--prefix", f->prefix,
                   "Key labels: PREFIX-ca, PREFIX-jwt, PREFIX-ledger (default trustwarden)");
  init->add_option("--key-type", f->key_type,
                   "ec-p256 (default), ec-p384 or rsa-3072 (signing with RSA-PSS) for the CA "
                   "and JWT keys")
      ->check(CLI::IsMember({"ec-p256", "ec-p384", "rsa-3072"}));
  AddJsonFlag(init, &f->json);
  init->callback([action, f] { *action = [f] { return HsmInit(*f); }; });
}

}  // namespace tw::cli
