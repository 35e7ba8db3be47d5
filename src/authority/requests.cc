#include "authority/requests.h"

namespace tw::authority {

absl::Status CheckPrincipalName(absl::string_view name) {
  if (name.empty() || name.size() > 128 ||
      name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-_.") != name.npos) {
    return absl::InvalidArgumentError("principal names are 1..128 of a-z 0-9 - _ .");
  }
  return absl::OkStatus();
}

}  // namespace tw::authority
