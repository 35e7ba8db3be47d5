#include "ledger/tree_head.h"

#include "base/status_macros.h"
#include "ledger/wire.h"

namespace tw::ledger {

base::Bytes TreeHeadData(const TreeHead& head) {
  WireWriter w;
  w.U64(static_cast<uint64_t>(head.timestamp_ms));
  w.U64(head.tree_size);
  w.Vec(head.root, 1);
  w.U16(0);
  return std::move(w.bytes());
}

absl::Status SignTreeHead(const crypto::Signer& signer, TreeHead& head) {
  TW_ASSIGN_OR_RETURN(head.signature, signer.Sign(TreeHeadData(head)));
  return absl::OkStatus();
}

absl::Status VerifyTreeHead(const crypto::PublicKey& key, const TreeHead& head) {
  if (!key.Verify(crypto::SignatureScheme::kEcdsaSha256, TreeHeadData(head), head.signature).ok()) {
    return absl::UnauthenticatedError("tree head signature does not verify");
  }
  return absl::OkStatus();
}

std::string LedgerKeyId(const crypto::PublicKey& key) {
  Hash h = crypto::Sha256Concat({key.spki_der()});
  return base::Base64UrlEncode(base::AsChars(h));
}

}  // namespace tw::ledger
