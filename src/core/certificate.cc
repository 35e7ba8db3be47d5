#include "core/certificate.h"

#include <openssl/err.h>
#include <openssl/pem.h>

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "core/attributes.h"
#include "core/signature_algorithm.h"
#include "crypto/der.h"
#include "crypto/ossl_ptr.h"

namespace tw::core {
namespace {

namespace der = crypto::der;
using crypto::SignatureScheme;

// OBJECT IDENTIFIER contents.
constexpr uint8_t kOidBasicConstraints[] = {0x55, 0x1d, 0x13};
constexpr uint8_t kOidKeyUsage[] = {0x55, 0x1d, 0x0f};
constexpr uint8_t kOidExtKeyUsage[] = {0x55, 0x1d, 0x25};
constexpr uint8_t kOidSubjectAltName[] = {0x55, 0x1d, 0x11};
constexpr uint8_t kOidSubjectKeyId[] = {0x55, 0x1d, 0x0e};
constexpr uint8_t kOidAuthorityKeyId[] = {0x55, 0x1d, 0x23};
constexpr uint8_t kOidNameConstraints[] = {0x55, 0x1d, 0x1e};
constexpr uint8_t kOidServerAuth[] = {0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01};
constexpr uint8_t kOidClientAuth[] = {0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02};

// RFC 5280 GeneralName tags: otherName, x400Address, directoryName and ediPartyName are
// constructed; rfc822Name, dNSName, URI, iPAddress and registeredID primitive.
bool KnownGeneralName(uint8_t tag) {
  switch (tag) {
    case der::ContextConstructed(0):
    case der::ContextPrimitive(1):
    case der::ContextPrimitive(2):
    case der::ContextConstructed(3):
    case der::ContextConstructed(4):
    case der::ContextConstructed(5):
    case der::ContextPrimitive(6):
    case der::ContextPrimitive(7):
    case der::ContextPrimitive(8):
      return true;
    default:
      return false;
  }
}

absl::Status Malformed(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("certificate: ", what));
}

std::string OidText(base::ByteView oid) {
  std::string s = der::DecodeOid(oid);
  return s.empty() ? absl::StrCat("0x", base::HexEncode(oid)) : s;
}

}  // namespace

absl::Status Certificate::ParseExtension(base::ByteView oid, bool critical, base::ByteView value) {
  der::Reader r(value);
  if (base::Equal(oid, kOidBasicConstraints)) {
    der::Reader seq(base::ByteView{});
    if (!r.Enter(der::kSequence, &seq) || !r.empty()) return Malformed("bad basicConstraints");
    has_basic_constraints_ = true;
    if (seq.Peek(der::kBoolean) && !seq.ReadBool(&is_ca_)) return Malformed("bad basicConstraints");
    if (seq.Peek(der::kInteger)) {
      int64_t n;
      if (!seq.ReadUint(&n)) return Malformed("bad pathLenConstraint");
      path_len_ = n;
    }
    if (!seq.empty()) return Malformed("bad basicConstraints");
  } else if (base::Equal(oid, kOidKeyUsage)) {
    base::ByteView bits;
    if (!r.ReadBitStringBytes(&bits) || !r.empty()) return Malformed("bad keyUsage");
    has_key_usage_ = true;
    for (int i = 0; i < 16 && static_cast<size_t>(i / 8) < bits.size(); ++i) {
      if (bits[static_cast<size_t>(i / 8)] & (0x80 >> (i % 8))) {
        key_usage_ |= static_cast<uint16_t>(1u << i);
      }
    }
  } else if (base::Equal(oid, kOidSubjectAltName)) {
    der::Reader seq(base::ByteView{});
    if (!r.Enter(der::kSequence, &seq) || !r.empty() || seq.empty()) {
      return Malformed("bad subjectAltName");
    }
    san_critical_ = critical;
    while (!seq.empty()) {
      uint8_t tag;
      base::ByteView name;
      if (!seq.ReadAny(&tag, &name)) return Malformed("bad subjectAltName");
      if (tag == der::ContextPrimitive(6)) {
        uris_.push_back(base::AsChars(name));
      } else if (tag == der::ContextPrimitive(2)) {
        dns_.push_back(base::AsChars(name));
      } else if (!KnownGeneralName(tag)) {
        // E.g. a URI in constructed form, which other parsers would still read as a URI.
        return Malformed("subjectAltName holds an unknown or misencoded name form");
      }
    }
  } else if (base::Equal(oid, kOidExtKeyUsage)) {
    der::Reader seq(base::ByteView{});
    if (!r.Enter(der::kSequence, &seq) || !r.empty() || seq.empty()) {
      return Malformed("bad extKeyUsage");
    }
    has_eku_ = true;
    while (!seq.empty()) {
      base::ByteView purpose;
      if (!seq.Read(der::kOid, &purpose)) return Malformed("bad extKeyUsage");
      eku_server_ |= base::Equal(purpose, kOidServerAuth);
      eku_client_ |= base::Equal(purpose, kOidClientAuth);
    }
  } else if (base::Equal(oid, kOidSubjectKeyId)) {
    if (!r.Read(der::kOctetString, &ski_) || !r.empty())
      return Malformed("bad subjectKeyIdentifier");
  } else if (base::Equal(oid, kOidAuthorityKeyId)) {
    der::Reader seq(base::ByteView{});
    bool present;
    if (!r.Enter(der::kSequence, &seq) || !r.empty() ||
        !seq.ReadOptional(der::ContextPrimitive(0), &aki_, &present)) {
      return Malformed("bad authorityKeyIdentifier");
    }
  } else if (base::Equal(oid, kAttributesOid) || base::Equal(oid, kLegacyAttributesOid)) {
    if (attributes_) return Malformed("two TrustWarden attribute extensions");
    attributes_ = value;
  } else if (base::Equal(oid, kOidNameConstraints)) {
    return ParseNameConstraints(value);
  } else if (critical) {
    if (unhandled_critical_.empty()) unhandled_critical_ = OidText(oid);
  }
  return absl::OkStatus();
}

// NameConstraints ::= SEQUENCE { permittedSubtrees [0] GeneralSubtrees OPTIONAL,
//                                excludedSubtrees  [1] GeneralSubtrees OPTIONAL }
// GeneralSubtree ::= SEQUENCE { base GeneralName, minimum [0] DEFAULT 0, maximum [1] OPTIONAL }
absl::Status Certificate::ParseNameConstraints(base::ByteView value) {
  der::Reader r(value), nc(base::ByteView{});
  if (!r.Enter(der::kSequence, &nc) || !r.empty() || nc.empty()) {
    return Malformed("bad nameConstraints");
  }
  has_name_constraints_ = true;
  bool unsupported = false;
  for (int which = 0; which < 2; ++which) {
    der::Reader subtrees(base::ByteView{});
    if (!nc.Peek(der::ContextConstructed(which))) continue;
    if (!nc.Enter(der::ContextConstructed(which), &subtrees) || subtrees.empty()) {
      return Malformed("bad nameConstraints subtrees");
    }
    while (!subtrees.empty()) {
      der::Reader subtree(base::ByteView{});
      uint8_t tag;
      base::ByteView name;
      if (!subtrees.Enter(der::kSequence, &subtree) || !subtree.ReadAny(&tag, &name)) {
        return Malformed("bad nameConstraints subtree");
      }
      // minimum/maximum other than the defaults are not used by RFC 5280 profiles.
      if (!subtree.empty()) unsupported = true;
      if (tag == der::ContextPrimitive(2) || tag == der::ContextPrimitive(6)) {
        NameSubtree s{.form = tag == der::ContextPrimitive(2) ? NameSubtree::Form::kDns
                                                              : NameSubtree::Form::kUri,
                      .base = base::AsChars(name)};
        (which == 0 ? permitted_ : excluded_).push_back(s);
      } else {
        unsupported = true;  // directoryName, iPAddress, rfc822Name, ... are not evaluated
      }
    }
  }
  if (!nc.empty()) return Malformed("bad nameConstraints");
  // Refused rather than accepted without the constraints it cannot evaluate.
  if (unsupported && unhandled_critical_.empty()) {
    unhandled_critical_ = "2.5.29.30 (nameConstraints on a name form other than DNS or URI)";
  }
  return absl::OkStatus();
}

absl::StatusOr<Certificate> Certificate::Parse(base::Bytes bytes) {
  Certificate c;
  c.der_ = std::move(bytes);
  der::Reader outer(c.der_), cert(base::ByteView{}), tbs(base::ByteView{});
  base::ByteView tbs_element, sig_alg, sig_alg_contents;
  if (!outer.Enter(der::kSequence, &cert) || !outer.empty() ||
      !cert.Read(der::kSequence, nullptr, &tbs_element) ||
      !cert.Read(der::kSequence, &sig_alg_contents, &sig_alg) ||
      !cert.ReadBitStringOctets(&c.signature_) || !cert.empty()) {
    return Malformed("not a DER X.509 certificate");
  }
  c.tbs_ = tbs_element;
  base::ByteView tbs_contents;
  der::Reader(tbs_element).Read(der::kSequence, &tbs_contents);
  tbs = der::Reader(tbs_contents);

  der::Reader version(base::ByteView{});
  int64_t v;
  if (!tbs.Enter(der::ContextConstructed(0), &version) || !version.ReadUint(&v) ||
      !version.empty() || v != 2) {
    return Malformed("not an X.509 v3 certificate");
  }
  base::ByteView inner_sig_alg;
  if (!tbs.ReadPositiveInteger(&c.serial_)) {
    return Malformed("serial number is not a positive, minimally encoded INTEGER");
  }
  if (!tbs.Read(der::kSequence, nullptr, &inner_sig_alg)) {
    return Malformed("bad signature algorithm");
  }
  if (c.serial_.size() > 21) return Malformed("serial number longer than 20 bytes");
  if (!base::Equal(inner_sig_alg, sig_alg)) return Malformed("signature algorithms disagree");
  absl::StatusOr<SignatureScheme> scheme = ParseSignatureAlgorithm(sig_alg_contents);
  if (!scheme.ok()) return Malformed(scheme.status().message());
  c.scheme_ = *scheme;

  der::Reader validity(base::ByteView{});
  if (!tbs.Read(der::kSequence, nullptr, &c.issuer_) || !tbs.Enter(der::kSequence, &validity) ||
      !validity.ReadTime(&c.not_before_) || !validity.ReadTime(&c.not_after_) ||
      !validity.empty() || !tbs.Read(der::kSequence, nullptr, &c.subject_) ||
      !tbs.Read(der::kSequence, nullptr, &c.spki_)) {
    return Malformed("bad issuer, validity, subject or public key");
  }
  base::ByteView ignored;
  bool present;
  if (!tbs.ReadOptional(der::ContextPrimitive(1), &ignored, &present) ||
      !tbs.ReadOptional(der::ContextPrimitive(2), &ignored, &present)) {
    return Malformed("bad unique identifier");
  }
  der::Reader exts_wrapper(base::ByteView{}), exts(base::ByteView{});
  if (tbs.Peek(der::ContextConstructed(3))) {
    if (!tbs.Enter(der::ContextConstructed(3), &exts_wrapper) ||
        !exts_wrapper.Enter(der::kSequence, &exts) || !exts_wrapper.empty() || exts.empty()) {
      return Malformed("bad extensions");
    }
  }
  if (!tbs.empty()) return Malformed("trailing data in tbsCertificate");
  std::vector<base::ByteView> seen;
  while (!exts.empty()) {
    der::Reader ext(base::ByteView{});
    base::ByteView oid, value;
    bool critical = false;
    if (!exts.Enter(der::kSequence, &ext) || !ext.Read(der::kOid, &oid) ||
        (ext.Peek(der::kBoolean) && !ext.ReadBool(&critical)) ||
        !ext.Read(der::kOctetString, &value) || !ext.empty()) {
      return Malformed("bad extension");
    }
    for (base::ByteView s : seen) {
      if (base::Equal(s, oid)) return Malformed(absl::StrCat("duplicate extension ", OidText(oid)));
    }
    seen.push_back(oid);
    if (absl::Status s = c.ParseExtension(oid, critical, value); !s.ok()) return s;
  }
  return c;
}

absl::StatusOr<std::vector<Certificate>> Certificate::ParseChain(absl::string_view input) {
  std::vector<Certificate> out;
  if (input.find("-----BEGIN") != absl::string_view::npos) {
    std::vector<base::Bytes> blocks = DecodePemBlocks(input, "CERTIFICATE");
    if (blocks.empty()) return Malformed("no PEM CERTIFICATE block");
    for (base::Bytes& b : blocks) {
      auto c = Parse(std::move(b));
      if (!c.ok()) return c.status();
      out.push_back(*std::move(c));
    }
    return out;
  }
  der::Reader r(base::AsBytes(input));
  while (!r.empty()) {
    base::ByteView contents, element;
    if (!r.Read(der::kSequence, &contents, &element)) return Malformed("not DER certificates");
    auto c = Parse(base::Bytes(element.begin(), element.end()));
    if (!c.ok()) return c.status();
    out.push_back(*std::move(c));
  }
  if (out.empty()) return Malformed("no certificate");
  return out;
}

std::string Certificate::SerialHex() const { return base::HexEncode(serial_); }

bool Certificate::SelfIssued() const { return base::Equal(issuer_, subject_); }

std::string PemEncode(absl::string_view label, base::ByteView der) {
  std::string b64 = absl::Base64Escape(base::AsChars(der));
  std::string out = absl::StrCat("-----BEGIN ", label, "-----\n");
  for (size_t i = 0; i < b64.size(); i += 64) absl::StrAppend(&out, b64.substr(i, 64), "\n");
  absl::StrAppend(&out, "-----END ", label, "-----\n");
  return out;
}

std::string CertificatesToPem(const std::vector<base::ByteView>& ders) {
  std::string out;
  for (base::ByteView d : ders) absl::StrAppend(&out, PemEncode("CERTIFICATE", d));
  return out;
}

std::vector<base::Bytes> DecodePemBlocks(absl::string_view text, absl::string_view label) {
  std::vector<base::Bytes> out;
  crypto::UniquePtr<BIO> bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
  while (true) {
    char* name = nullptr;
    char* header = nullptr;
    unsigned char* data = nullptr;
    long len = 0;
    if (PEM_read_bio(bio.get(), &name, &header, &data, &len) != 1) break;
    if (name != nullptr && label == name) out.emplace_back(data, data + len);
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(data);
  }
  ERR_clear_error();
  return out;
}

}  // namespace tw::core
