#include "core/x509_issuer.h"

#include <openssl/sha.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "core/signature_algorithm.h"
#include "crypto/der.h"
#include "crypto/random.h"

namespace tw::core {
namespace {

namespace der = crypto::der;
using crypto::SignatureScheme;

constexpr uint8_t kOidOrganization[] = {0x55, 0x04, 0x0a};
constexpr uint8_t kOidCommonName[] = {0x55, 0x04, 0x03};
constexpr uint8_t kOidBasicConstraints[] = {0x55, 0x1d, 0x13};
constexpr uint8_t kOidKeyUsage[] = {0x55, 0x1d, 0x0f};
constexpr uint8_t kOidExtKeyUsage[] = {0x55, 0x1d, 0x25};
constexpr uint8_t kOidSubjectAltName[] = {0x55, 0x1d, 0x11};
constexpr uint8_t kOidSubjectKeyId[] = {0x55, 0x1d, 0x0e};
constexpr uint8_t kOidAuthorityKeyId[] = {0x55, 0x1d, 0x23};
constexpr uint8_t kOidServerAuth[] = {0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01};
constexpr uint8_t kOidClientAuth[] = {0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02};

// RFC 5280 §4.2.1.2 method (1): SHA-1 of the subjectPublicKey BIT STRING contents.
base::Bytes KeyId(const crypto::PublicKey& key) {
  der::Reader outer(key.spki_der()), spki(base::ByteView{});
  base::ByteView bits;
  outer.Enter(der::kSequence, &spki);
  spki.Read(der::kSequence, nullptr);
  spki.ReadBitStringOctets(&bits);
  base::Bytes out(SHA_DIGEST_LENGTH);
  SHA1(bits.data(), bits.size(), out.data());
  return out;
}

void AddName(der::Writer& w, absl::string_view common_name) {
  size_t name = w.Open(der::kSequence);
  size_t rdn = w.Open(der::kSet);
  size_t atv = w.Open(der::kSequence);
  w.Add(der::kOid, kOidOrganization);
  w.Add(der::kUtf8String, base::AsBytes("TrustWarden"));
  w.Close(atv);
  w.Close(rdn);
  if (!common_name.empty()) {
    rdn = w.Open(der::kSet);
    atv = w.Open(der::kSequence);
    w.Add(der::kOid, kOidCommonName);
    w.Add(der::kUtf8String, base::AsBytes(common_name));
    w.Close(atv);
    w.Close(rdn);
  }
  w.Close(name);
}

// Opens one Extension; returns the handles to close (extnValue OCTET STRING, Extension).
std::pair<size_t, size_t> OpenExtension(der::Writer& w, base::ByteView oid, bool critical) {
  size_t ext = w.Open(der::kSequence);
  w.Add(der::kOid, oid);
  if (critical) w.AddBool(true);
  size_t value = w.Open(der::kOctetString);
  return {value, ext};
}
void CloseExtension(der::Writer& w, std::pair<size_t, size_t> h) {
  w.Close(h.first);
  w.Close(h.second);
}

struct TbsParts {
  base::ByteView sig_alg;      // the DER AlgorithmIdentifier
  base::ByteView issuer_name;  // empty: self-signed, use the subject
  absl::string_view common_name;
  absl::Time not_before, not_after;
  const crypto::PublicKey* subject_key;
  base::ByteView authority_key_id;  // empty: none (self-signed roots use their own)
  bool ca;
  std::optional<int> path_len;
  const LeafRequest* leaf;   // leaf-only extensions
  absl::string_view ca_uri;  // CA URI SAN
};

base::Bytes EncodeTbs(const TbsParts& p) {
  base::Bytes out;
  out.reserve(768);
  der::Writer w(&out);
  size_t tbs = w.Open(der::kSequence);
  size_t version = w.Open(der::ContextConstructed(0));
  w.AddUint(2);
  w.Close(version);
  base::Bytes serial = crypto::RandomBytes(16);
  serial[0] = static_cast<uint8_t>((serial[0] & 0x7f) | 0x40);  // positive, 16 bytes
  w.Add(der::kInteger, serial);
  w.AddRaw(p.sig_alg);
  base::Bytes subject;
  der::Writer sw(&subject);
  AddName(sw, p.common_name);
  w.AddRaw(p.issuer_name.empty() ? base::ByteView(subject) : p.issuer_name);
  size_t validity = w.Open(der::kSequence);
  w.AddTime(p.not_before);
  w.AddTime(p.not_after);
  w.Close(validity);
  w.AddRaw(subject);
  w.AddRaw(p.subject_key->spki_der());

  size_t exts_wrapper = w.Open(der::ContextConstructed(3));
  size_t exts = w.Open(der::kSequence);
  auto h = OpenExtension(w, kOidBasicConstraints, true);
  size_t bc = w.Open(der::kSequence);
  if (p.ca) {
    w.AddBool(true);
    if (p.path_len) w.AddUint(static_cast<uint64_t>(*p.path_len));
  }
  w.Close(bc);
  CloseExtension(w, h);
  h = OpenExtension(w, kOidKeyUsage, true);
  w.AddNamedBits(p.ca ? (kKeyCertSign | kCrlSign) : kDigitalSignature);
  CloseExtension(w, h);
  if (!p.ca) {
    h = OpenExtension(w, kOidExtKeyUsage, false);
    size_t eku = w.Open(der::kSequence);
    w.Add(der::kOid, kOidServerAuth);
    w.Add(der::kOid, kOidClientAuth);
    w.Close(eku);
    CloseExtension(w, h);
  }
  base::Bytes ski = KeyId(*p.subject_key);
  h = OpenExtension(w, kOidSubjectKeyId, false);
  w.Add(der::kOctetString, ski);
  CloseExtension(w, h);
  base::ByteView aki = p.authority_key_id.empty() ? base::ByteView(ski) : p.authority_key_id;
  h = OpenExtension(w, kOidAuthorityKeyId, false);
  size_t aki_seq = w.Open(der::kSequence);
  w.Add(der::ContextPrimitive(0), aki);
  w.Close(aki_seq);
  CloseExtension(w, h);
  h = OpenExtension(w, kOidSubjectAltName, false);
  size_t san = w.Open(der::kSequence);
  if (p.leaf != nullptr) {
    w.Add(der::ContextPrimitive(6), base::AsBytes(p.leaf->spiffe_id.str()));
    for (const std::string& dns : p.leaf->dns_names) {
      w.Add(der::ContextPrimitive(2), base::AsBytes(dns));
    }
    for (const base::Bytes& ip : p.leaf->ip_addresses) w.Add(der::ContextPrimitive(7), ip);
  } else {
    w.Add(der::ContextPrimitive(6), base::AsBytes(p.ca_uri));
  }
  w.Close(san);
  CloseExtension(w, h);
  if (p.leaf != nullptr) {
    h = OpenExtension(w, base::ByteView(kAttributesOid), false);
    base::Bytes attrs = EncodeAttributes(p.leaf->attributes);
    w.AddRaw(attrs);
    CloseExtension(w, h);
  }
  w.Close(exts);
  w.Close(exts_wrapper);
  w.Close(tbs);
  return out;
}

absl::StatusOr<base::Bytes> SignTbs(const crypto::Signer& signer, base::ByteView sig_alg,
                                    base::Bytes tbs) {
  TW_ASSIGN_OR_RETURN(base::Bytes sig, signer.Sign(tbs));
  base::Bytes out;
  out.reserve(tbs.size() + sig.size() + 32);
  der::Writer w(&out);
  size_t cert = w.Open(der::kSequence);
  w.AddRaw(tbs);
  w.AddRaw(sig_alg);
  w.AddBitString(sig);
  w.Close(cert);
  return out;
}

std::string CaCommonName(bool root) {
  return absl::StrCat(root ? "TrustWarden CA " : "TrustWarden Intermediate CA ",
                      base::HexEncode(crypto::RandomBytes(4)));
}

absl::Status CheckWindow(absl::Time not_before, absl::Time not_after) {
  if (not_after <= not_before) {
    return absl::InvalidArgumentError("certificate validity: notAfter is not after notBefore");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<base::Bytes> X509Issuer::SelfSignedCa(const crypto::Signer& signer,
                                                     const CaRequest& request) {
  TW_RETURN_IF_ERROR(CheckWindow(request.not_before, request.not_after));
  if (request.path_len && *request.path_len < 0) {
    return absl::InvalidArgumentError("negative pathLenConstraint");
  }
  TW_ASSIGN_OR_RETURN(base::ByteView oid, SignatureAlgorithmDer(signer.algorithm()));
  std::string cn = CaCommonName(true);
  std::string uri = request.trust_domain.IdString();
  TbsParts p{.sig_alg = oid,
             .issuer_name = {},
             .common_name = cn,
             .not_before = request.not_before,
             .not_after = request.not_after,
             .subject_key = &signer.public_key(),
             .authority_key_id = {},
             .ca = true,
             .path_len = request.path_len,
             .leaf = nullptr,
             .ca_uri = uri};
  return SignTbs(signer, oid, EncodeTbs(p));
}

absl::StatusOr<X509Issuer> X509Issuer::Create(std::shared_ptr<const crypto::Signer> signer,
                                              std::vector<base::Bytes> ca_chain) {
  if (ca_chain.empty()) return absl::InvalidArgumentError("CA chain is empty");
  std::vector<Certificate> chain;
  for (base::Bytes& der : ca_chain) {
    TW_ASSIGN_OR_RETURN(Certificate c, Certificate::Parse(std::move(der)));
    chain.push_back(std::move(c));
  }
  const Certificate& ca = chain.front();
  if (!ca.is_ca() || !(ca.key_usage() & kKeyCertSign)) {
    return absl::InvalidArgumentError("CA certificate: not a CA with keyCertSign");
  }
  if (ca.uri_sans().size() != 1) {
    return absl::InvalidArgumentError("CA certificate: want exactly one URI SAN spiffe://TD");
  }
  TW_ASSIGN_OR_RETURN(SpiffeId ca_id, SpiffeId::FromString(ca.uri_sans()[0]));
  if (!ca_id.is_trust_domain_id()) {
    return absl::InvalidArgumentError("CA certificate: its SPIFFE ID must have no path");
  }
  base::ByteView spki = ca.spki();
  const base::Bytes& signer_spki = signer->public_key_der();
  if (!std::equal(spki.begin(), spki.end(), signer_spki.begin(), signer_spki.end())) {
    return absl::InvalidArgumentError("CA certificate: its public key is not the signer's");
  }
  base::Bytes ski = KeyId(signer->public_key());
  absl::Time chain_not_after = absl::InfiniteFuture();
  for (const Certificate& c : chain) chain_not_after = std::min(chain_not_after, c.not_after());
  auto state = std::make_shared<State>(State{.signer = std::move(signer),
                                             .chain = std::move(chain),
                                             .served = {},
                                             .trust_domain = ca_id.trust_domain(),
                                             .ski = std::move(ski),
                                             .chain_not_after = chain_not_after});
  TW_RETURN_IF_ERROR(SignatureAlgorithmDer(state->signer->algorithm()).status());
  for (const Certificate& c : state->chain) {
    if (!c.SelfIssued()) state->served.push_back(c.der());
  }
  return X509Issuer(std::move(state));
}

absl::StatusOr<base::Bytes> X509Issuer::IssueLeaf(const LeafRequest& request,
                                                  const crypto::PublicKey& subject_key) const {
  if (!request.spiffe_id.MemberOf(state_->trust_domain)) {
    return absl::InvalidArgumentError(absl::StrCat("SPIFFE ID ", request.spiffe_id.str(),
                                                   " is not in trust domain ",
                                                   state_->trust_domain.name()));
  }
  if (request.spiffe_id.is_trust_domain_id()) {
    return absl::InvalidArgumentError("a leaf SVID's SPIFFE ID needs a path (X509-SVID §2)");
  }
  for (const base::Bytes& ip : request.ip_addresses) {
    if (ip.size() != 4 && ip.size() != 16) return absl::InvalidArgumentError("bad IP address");
  }
  const Certificate& ca = certificate();
  absl::Time not_after = std::min(request.not_after, state_->chain_not_after);
  absl::Time not_before = std::max(request.not_before, ca.not_before());
  TW_RETURN_IF_ERROR(CheckWindow(not_before, not_after));
  base::ByteView oid = *SignatureAlgorithmDer(state_->signer->algorithm());
  TbsParts p{.sig_alg = oid,
             .issuer_name = ca.subject(),
             .common_name = {},
             .not_before = not_before,
             .not_after = not_after,
             .subject_key = &subject_key,
             .authority_key_id = state_->ski,
             .ca = false,
             .path_len = std::nullopt,
             .leaf = &request,
             .ca_uri = {}};
  return SignTbs(*state_->signer, oid, EncodeTbs(p));
}

absl::StatusOr<base::Bytes> X509Issuer::IssueCa(const CaRequest& request,
                                                const crypto::PublicKey& subject_key) const {
  if (request.trust_domain != state_->trust_domain) {
    return absl::InvalidArgumentError("an intermediate CA stays in its parent's trust domain");
  }
  const Certificate& ca = certificate();
  if (ca.path_len() && *ca.path_len() == 0) {
    return absl::FailedPreconditionError("the CA's pathLenConstraint forbids intermediates");
  }
  std::optional<int> path_len = request.path_len;
  if (path_len && *path_len < 0) return absl::InvalidArgumentError("negative pathLenConstraint");
  if (ca.path_len()) {
    // One level is used by the new intermediate itself (RFC 5280 §4.2.1.9).
    int most = static_cast<int>(*ca.path_len()) - 1;
    path_len = path_len ? std::min(*path_len, most) : most;
  }
  absl::Time not_after = std::min(request.not_after, state_->chain_not_after);
  absl::Time not_before = std::max(request.not_before, ca.not_before());
  TW_RETURN_IF_ERROR(CheckWindow(not_before, not_after));
  base::ByteView oid = *SignatureAlgorithmDer(state_->signer->algorithm());
  std::string cn = CaCommonName(false);
  std::string uri = request.trust_domain.IdString();
  TbsParts p{.sig_alg = oid,
             .issuer_name = ca.subject(),
             .common_name = cn,
             .not_before = not_before,
             .not_after = not_after,
             .subject_key = &subject_key,
             .authority_key_id = state_->ski,
             .ca = true,
             .path_len = path_len,
             .leaf = nullptr,
             .ca_uri = uri};
  return SignTbs(*state_->signer, oid, EncodeTbs(p));
}

absl::StatusOr<base::Bytes> BuildCertificateRequest(const crypto::Signer& signer) {
  TW_ASSIGN_OR_RETURN(base::ByteView oid, SignatureAlgorithmDer(signer.algorithm()));
  base::Bytes info;
  der::Writer w(&info);
  size_t seq = w.Open(der::kSequence);
  w.AddUint(0);                                 // version v1
  w.Close(w.Open(der::kSequence));              // empty subject
  w.AddRaw(signer.public_key_der());            // subjectPKInfo
  w.Close(w.Open(der::ContextConstructed(0)));  // attributes [0], none
  w.Close(seq);
  return SignTbs(signer, oid, std::move(info));
}

}  // namespace tw::core
