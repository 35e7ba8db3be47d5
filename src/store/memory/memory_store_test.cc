#include "store/memory/memory_store.h"

#include "store/testing/store_conformance.h"

namespace tw::store {
namespace {

INSTANTIATE_TEST_SUITE_P(Memory, StoreConformanceTest,
                         ::testing::Values(StoreBackend{
                             "memory",
                             [](const std::string&) -> absl::StatusOr<std::unique_ptr<Store>> {
                               return std::make_unique<MemoryStore>();
                             },
                             /*durable=*/false}),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace tw::store
