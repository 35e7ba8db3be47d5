// A move-only buffer for secrets (private keys, tokens); wiped on destruction.
#pragma once

#include <openssl/crypto.h>

#include <string>
#include <utility>

#include "absl/strings/string_view.h"

namespace tw::crypto {

class SecretBytes {
 public:
  SecretBytes() = default;
  explicit SecretBytes(std::string value) : value_(std::move(value)) {}
  SecretBytes(SecretBytes&& other) noexcept : value_(std::move(other.value_)) { other.Wipe(); }
  SecretBytes& operator=(SecretBytes&& other) noexcept {
    if (this != &other) {
      Wipe();
      value_ = std::move(other.value_);
      other.Wipe();
    }
    return *this;
  }
  SecretBytes(const SecretBytes&) = delete;
  SecretBytes& operator=(const SecretBytes&) = delete;
  ~SecretBytes() { Wipe(); }

  absl::string_view view() const { return value_; }
  bool empty() const { return value_.empty(); }

 private:
  void Wipe() {
    if (!value_.empty()) OPENSSL_cleanse(value_.data(), value_.size());
    value_.clear();
  }
  std::string value_;
};

}  // namespace tw::crypto
