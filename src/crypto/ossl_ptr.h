// Owning smart pointers for OpenSSL objects: UniquePtr<T> with one deleter per type.
// Wrap an owning pointer on the line it is returned; get0 borrows, get1 owns.
#pragma once

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>

#include <memory>

namespace tw::crypto {

template <typename T>
struct Deleter;

#define TW_OSSL_DELETER(type, fn)             \
  template <>                                 \
  struct Deleter<type> {                      \
    void operator()(type* p) const { fn(p); } \
  }

TW_OSSL_DELETER(ASN1_OBJECT, ASN1_OBJECT_free);
TW_OSSL_DELETER(ASN1_OCTET_STRING, ASN1_OCTET_STRING_free);
TW_OSSL_DELETER(BIO, BIO_free_all);
TW_OSSL_DELETER(BIGNUM, BN_free);
TW_OSSL_DELETER(EC_GROUP, EC_GROUP_free);
TW_OSSL_DELETER(EC_POINT, EC_POINT_free);
TW_OSSL_DELETER(ECDSA_SIG, ECDSA_SIG_free);
TW_OSSL_DELETER(EVP_MD_CTX, EVP_MD_CTX_free);
TW_OSSL_DELETER(EVP_PKEY, EVP_PKEY_free);
TW_OSSL_DELETER(EVP_PKEY_CTX, EVP_PKEY_CTX_free);
TW_OSSL_DELETER(OSSL_PARAM_BLD, OSSL_PARAM_BLD_free);
TW_OSSL_DELETER(OSSL_PARAM, OSSL_PARAM_free);
TW_OSSL_DELETER(X509, X509_free);
TW_OSSL_DELETER(X509_REQ, X509_REQ_free);
TW_OSSL_DELETER(X509_STORE, X509_STORE_free);
TW_OSSL_DELETER(X509_STORE_CTX, X509_STORE_CTX_free);
TW_OSSL_DELETER(STACK_OF(X509), sk_X509_free);

#undef TW_OSSL_DELETER

template <typename T>
using UniquePtr = std::unique_ptr<T, Deleter<T>>;

}  // namespace tw::crypto
