#include "trustwarden/tls.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "crypto/ossl_ptr.h"
#include "sdk/identity_state.h"
#include "sdk/peer_check.h"
#include "sdk/status_error.h"
#include "sdk/tls_context.h"

namespace trustwarden {
namespace {

using tw::crypto::UniquePtr;
using State = AgentIdentity::State;

// What a context needs at each handshake: the identity whose SVID it presents (parsed
// once per certificate) and the peer check.
struct Binding {
  std::shared_ptr<State> self;
  std::shared_ptr<const internal::PeerCheck> check;
  Requirement peer;

  absl::Mutex mu;
  std::string serial ABSL_GUARDED_BY(mu);  // of the parsed credential below
  UniquePtr<X509> leaf ABSL_GUARDED_BY(mu);
  std::vector<UniquePtr<X509>> intermediates ABSL_GUARDED_BY(mu);
  // Its private key, in its signer.
  std::shared_ptr<const tw::crypto::SoftwareSigner> key ABSL_GUARDED_BY(mu);
};

void FreeBinding(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
  delete static_cast<Binding*>(ptr);
}
void FreePeer(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
  delete static_cast<std::string*>(ptr);
}

int BindingIndex() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, FreeBinding);
  return index;
}
int PeerIndex() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, FreePeer);
  return index;
}

// Presents the identity's current SVID, whatever renewals happened since the last one.
int UseCurrentSvid(SSL* ssl, void* arg) {
  Binding& b = *static_cast<Binding*>(arg);
  const internal::Credential c = b.self->Current();
  absl::MutexLock lock(&b.mu);
  if (b.serial != c.svid.serial_hex) {
    UniquePtr<BIO> chain(BIO_new_mem_buf(c.svid_pem.data(), static_cast<int>(c.svid_pem.size())));
    if (chain == nullptr) return 0;
    UniquePtr<X509> leaf(PEM_read_bio_X509(chain.get(), nullptr, nullptr, nullptr));
    if (leaf == nullptr) return 0;
    std::vector<UniquePtr<X509>> intermediates;
    while (X509* x = PEM_read_bio_X509(chain.get(), nullptr, nullptr, nullptr)) {
      intermediates.emplace_back(x);
    }
    ERR_clear_error();  // the read past the last certificate
    b.leaf = std::move(leaf);
    b.key = c.key;
    b.intermediates = std::move(intermediates);
    b.serial = c.svid.serial_hex;
  }
  if (SSL_use_certificate(ssl, b.leaf.get()) != 1 ||
      SSL_use_PrivateKey(ssl, b.key->get0_pkey()) != 1) {
    return 0;
  }
  for (const UniquePtr<X509>& x : b.intermediates) {
    if (SSL_add1_chain_cert(ssl, x.get()) != 1) return 0;
  }
  return 1;
}

tw::base::Bytes Der(X509* x) {
  unsigned char* out = nullptr;
  const int n = i2d_X509(x, &out);
  if (n <= 0) return {};
  tw::base::Bytes der(out, out + n);
  OPENSSL_free(out);
  return der;
}

// Replaces OpenSSL's chain building (and any host name check) with the SPIFFE checks.
int VerifyPeer(X509_STORE_CTX* store, void* arg) {
  const Binding& b = *static_cast<Binding*>(arg);
  X509* leaf = X509_STORE_CTX_get0_cert(store);
  if (leaf == nullptr) return 0;
  std::vector<tw::base::Bytes> ders = {Der(leaf)};
  if (STACK_OF(X509)* untrusted = X509_STORE_CTX_get0_untrusted(store)) {
    for (int i = 0; i < sk_X509_num(untrusted); ++i) {
      X509* x = sk_X509_value(untrusted, i);
      if (X509_cmp(x, leaf) != 0) ders.push_back(Der(x));
    }
  }
  std::vector<tw::base::ByteView> views(ders.begin(), ders.end());
  // Not OK: the requirement itself is malformed.
  absl::StatusOr<Decision> d = b.check->CheckX509(views, b.peer);
  if (!d.ok() || !d->allowed) {
    X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
    return 0;
  }
  SSL* ssl =
      static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  if (ssl != nullptr) {
    delete static_cast<std::string*>(SSL_get_ex_data(ssl, PeerIndex()));
    SSL_set_ex_data(ssl, PeerIndex(), new std::string(d->spiffe_id));
  }
  return 1;
}

}  // namespace

namespace internal {

void SslCtxFree::operator()(ssl_ctx_st* ctx) const { SSL_CTX_free(ctx); }

absl::StatusOr<SslCtxPtr> NewTlsContext(const AgentIdentity& self, const Requirement& peer,
                                        bool server) {
  const std::shared_ptr<State>& state = Access::Of(self);
  SslCtxPtr ctx(SSL_CTX_new(server ? TLS_server_method() : TLS_client_method()));
  if (ctx == nullptr) return absl::InternalError("SSL_CTX_new failed");
  auto binding = std::make_unique<Binding>();
  binding->self = state;
  binding->check = std::make_shared<PeerCheck>(state->endpoint);
  binding->peer = peer;
  Binding* raw = binding.get();
  if (SSL_CTX_set_ex_data(ctx.get(), BindingIndex(), binding.get()) != 1) {
    return absl::InternalError("SSL_CTX_set_ex_data failed");
  }
  binding.release();  // the context frees it (FreeBinding)
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_cert_cb(ctx.get(), UseCurrentSvid, raw);
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER | (server ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
                     nullptr);
  SSL_CTX_set_cert_verify_callback(ctx.get(), VerifyPeer, raw);
  // Every connection is authenticated afresh: a resumed session would skip the peer and
  // revocation checks.
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_TICKET);
  SSL_CTX_set_num_tickets(ctx.get(), 0);
  return ctx;
}

}  // namespace internal

ssl_ctx_st* server_tls_context(const AgentIdentity& self, const Requirement& peer) {
  return internal::ValueOrThrow(internal::NewTlsContext(self, peer, true)).release();
}

ssl_ctx_st* client_tls_context(const AgentIdentity& self, const Requirement& peer) {
  return internal::ValueOrThrow(internal::NewTlsContext(self, peer, false)).release();
}

std::string peer_spiffe_id(const ssl_st* ssl) {
  const auto* id = static_cast<const std::string*>(SSL_get_ex_data(ssl, PeerIndex()));
  return id != nullptr ? *id : "";
}

}  // namespace trustwarden
