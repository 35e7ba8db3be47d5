#include "core/csr.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <optional>

#include "absl/strings/str_cat.h"
#include "core/certificate.h"
#include "crypto/der.h"
#include "crypto/ossl_ptr.h"

namespace tw::core {
namespace {

absl::Status Invalid(absl::string_view why) {
  ERR_clear_error();
  return absl::InvalidArgumentError(absl::StrCat("CSR: ", why));
}

namespace der = crypto::der;

constexpr uint8_t kOidEcdsaSha256[] = {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02};
constexpr uint8_t kOidEcdsaSha384[] = {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03};
constexpr uint8_t kOidExtensionRequest[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x0e};
constexpr uint8_t kOidBasicConstraints[] = {0x55, 0x1d, 0x13};
constexpr uint8_t kOidSubjectAltName[] = {0x55, 0x1d, 0x11};
constexpr uint8_t kTagUri = 0x86;  // GeneralName uniformResourceIdentifier [6] IMPLICIT

// The common case without OpenSSL's object decoding (which costs more than the signature
// check): a DER request signed with ECDSA whose only attribute is an extensionRequest.
// nullopt hands anything else to the general path, which decides on it.
std::optional<absl::StatusOr<CertificateRequest>> Fail(absl::string_view why) {
  return absl::StatusOr<CertificateRequest>(Invalid(why));
}

std::optional<absl::StatusOr<CertificateRequest>> ParseEcdsaRequest(base::ByteView der_bytes) {
  der::Reader outer(der_bytes), req({}), info({}), alg({}), attrs({});
  base::ByteView info_element, spki, alg_oid, signature;
  int64_t version;
  if (!outer.Enter(der::kSequence, &req) || !outer.empty() ||
      !req.Read(der::kSequence, nullptr, &info_element) || !req.Enter(der::kSequence, &alg) ||
      !alg.Read(der::kOid, &alg_oid) || !alg.empty() || !req.ReadBitStringOctets(&signature) ||
      !req.empty()) {
    return std::nullopt;
  }
  crypto::SignatureScheme scheme;
  if (base::Equal(alg_oid, kOidEcdsaSha256)) {
    scheme = crypto::SignatureScheme::kEcdsaSha256;
  } else if (base::Equal(alg_oid, kOidEcdsaSha384)) {
    scheme = crypto::SignatureScheme::kEcdsaSha384;
  } else {
    return std::nullopt;
  }
  der::Reader info_outer(info_element);
  if (!info_outer.Enter(der::kSequence, &info) || !info.ReadUint(&version) || version != 0 ||
      !info.Read(der::kSequence, nullptr) || !info.Read(der::kSequence, nullptr, &spki) ||
      !info.Enter(der::ContextConstructed(0), &attrs) || !info.empty()) {
    return std::nullopt;
  }
  auto key = crypto::PublicKey::FromSpkiDer(spki);
  if (!key.ok() || key->type() == crypto::KeyType::kRsa) return std::nullopt;
  if (!key->Verify(scheme, info_element, signature).ok()) {
    return Fail("its signature does not verify");
  }
  CertificateRequest out{.public_key = *std::move(key), .uri_sans = {}};
  while (!attrs.empty()) {
    der::Reader attr({}), values({}), exts({});
    base::ByteView type;
    if (!attrs.Enter(der::kSequence, &attr) || !attr.Read(der::kOid, &type) ||
        !base::Equal(type, kOidExtensionRequest) || !attr.Enter(der::kSet, &values) ||
        !attr.empty() || !values.Enter(der::kSequence, &exts) || !values.empty()) {
      return std::nullopt;
    }
    while (!exts.empty()) {
      der::Reader ext({}), value({});
      base::ByteView id, octets;
      bool present = false;
      base::ByteView critical_contents;
      if (!exts.Enter(der::kSequence, &ext) || !ext.Read(der::kOid, &id) ||
          !ext.ReadOptional(der::kBoolean, &critical_contents, &present) ||
          !ext.Read(der::kOctetString, &octets) || !ext.empty()) {
        return std::nullopt;
      }
      der::Reader body(octets);
      if (base::Equal(id, kOidBasicConstraints)) {
        der::Reader bc({});
        bool ca = false;
        if (!body.Enter(der::kSequence, &bc) || !body.empty()) return std::nullopt;
        if (bc.Peek(der::kBoolean) && !bc.ReadBool(&ca)) return std::nullopt;
        if (ca) return Fail("requests a CA certificate");
      } else if (base::Equal(id, kOidSubjectAltName)) {
        der::Reader names({});
        if (!body.Enter(der::kSequence, &names) || !body.empty()) return std::nullopt;
        while (!names.empty()) {
          uint8_t tag;
          base::ByteView name;
          if (!names.ReadAny(&tag, &name)) return std::nullopt;
          if (tag != kTagUri) return Fail("requests a SAN that is not a URI");
          out.uri_sans.emplace_back(base::AsChars(name));
        }
      }
    }
  }
  return absl::StatusOr<CertificateRequest>(std::move(out));
}

}  // namespace

absl::StatusOr<CertificateRequest> ParseCertificateRequest(absl::string_view input) {
  if (input.size() > 64 * 1024) return Invalid("larger than 64 KiB");
  {
    std::vector<base::Bytes> blocks = DecodePemBlocks(input, "CERTIFICATE REQUEST");
    base::ByteView der_bytes = blocks.size() == 1 ? base::ByteView(blocks[0])
                               : input.find("-----BEGIN") == absl::string_view::npos
                                   ? base::AsBytes(input)
                                   : base::ByteView();
    if (!der_bytes.empty()) {
      if (auto fast = ParseEcdsaRequest(der_bytes)) return *std::move(fast);
    }
  }
  crypto::UniquePtr<X509_REQ> req;
  if (input.find("-----BEGIN") != absl::string_view::npos) {
    crypto::UniquePtr<BIO> bio(BIO_new_mem_buf(input.data(), static_cast<int>(input.size())));
    req.reset(PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr));
  } else {
    const unsigned char* p = reinterpret_cast<const unsigned char*>(input.data());
    req.reset(d2i_X509_REQ(nullptr, &p, static_cast<long>(input.size())));
    if (req && p != reinterpret_cast<const unsigned char*>(input.data()) + input.size()) {
      return Invalid("trailing data after the DER request");
    }
  }
  if (!req) return Invalid("not a PEM or DER PKCS#10 request");
  EVP_PKEY* pkey = X509_REQ_get0_pubkey(req.get());
  if (pkey == nullptr) return Invalid("no public key");
  if (X509_REQ_verify(req.get(), pkey) != 1) return Invalid("its signature does not verify");
  auto key = crypto::PublicKey::FromEvpPkey(pkey);
  if (!key.ok()) return Invalid(key.status().message());

  CertificateRequest out{.public_key = *std::move(key), .uri_sans = {}};
  STACK_OF(X509_EXTENSION)* exts = X509_REQ_get_extensions(req.get());
  absl::Status status;
  for (int i = 0; exts != nullptr && i < sk_X509_EXTENSION_num(exts) && status.ok(); ++i) {
    X509_EXTENSION* ext = sk_X509_EXTENSION_value(exts, i);
    int nid = OBJ_obj2nid(X509_EXTENSION_get_object(ext));
    if (nid == NID_basic_constraints) {
      auto* bc = static_cast<BASIC_CONSTRAINTS*>(X509V3_EXT_d2i(ext));
      if (bc == nullptr) {
        status = Invalid("malformed basicConstraints");
      } else if (bc->ca) {
        status = Invalid("requests a CA certificate");
      }
      BASIC_CONSTRAINTS_free(bc);
    } else if (nid == NID_subject_alt_name) {
      auto* names = static_cast<GENERAL_NAMES*>(X509V3_EXT_d2i(ext));
      if (names == nullptr) status = Invalid("malformed subjectAltName");
      for (int j = 0; names != nullptr && j < sk_GENERAL_NAME_num(names); ++j) {
        const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, j);
        if (name->type != GEN_URI) {
          status = Invalid("requests a SAN that is not a URI");
          break;
        }
        const ASN1_IA5STRING* uri = name->d.uniformResourceIdentifier;
        out.uri_sans.emplace_back(reinterpret_cast<const char*>(uri->data),
                                  static_cast<size_t>(uri->length));
      }
      GENERAL_NAMES_free(names);
    }
  }
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  if (!status.ok()) return status;
  return out;
}

}  // namespace tw::core
