#include "core/csr.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "absl/strings/str_cat.h"
#include "crypto/ossl_ptr.h"

namespace tw::core {
namespace {

absl::Status Invalid(absl::string_view why) {
  ERR_clear_error();
  return absl::InvalidArgumentError(absl::StrCat("CSR: ", why));
}

}  // namespace

absl::StatusOr<CertificateRequest> ParseCertificateRequest(absl::string_view input) {
  if (input.size() > 64 * 1024) return Invalid("larger than 64 KiB");
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
