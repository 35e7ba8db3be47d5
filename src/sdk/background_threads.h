// The SDK's own threads (revocation watchers, renewers), and others running SDK code (the
// Python binding's daemon threads): ended, or waited for, when the process exits, before
// the exit handler that tears OpenSSL down under them. Not installed; thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>

namespace trustwarden::internal {

// Registers `stop`, which ends threads running SDK code and waits for them, to run when
// the process exits (in registration order); the first registration installs the exit
// handler. nullopt once the process is exiting: the caller stops its thread itself then.
std::optional<uint64_t> StopAtExit(std::function<void()> stop);

// Withdraws registration `id`; if the exit handler is running its stop, waits for it to
// end. Never from the thread that stop ends.
void ForgetAtExit(uint64_t id);

// Names the calling thread (at most 15 characters), as ps, top -H and debuggers show it.
void NameThisThread(const char* name);

}  // namespace trustwarden::internal
