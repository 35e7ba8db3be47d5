#include "store/store.h"

namespace tw::store {

absl::string_view RevocationKindName(RevocationKind kind) {
  switch (kind) {
    case RevocationKind::kInstance:
      return "instance";
    case RevocationKind::kAgent:
      return "agent";
    case RevocationKind::kSubtree:
      return "subtree";
    case RevocationKind::kPrincipal:
      return "principal";
  }
  return "instance";
}

}  // namespace tw::store
