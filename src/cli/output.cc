#include "cli/output.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace tw::cli {

namespace {
bool json_requested = false;
}  // namespace

void AddJsonFlag(CLI::App* cmd, bool* as_json) {
  cmd->add_flag_callback(
      "--json",
      [as_json] {
        *as_json = true;
        json_requested = true;
      },
      "One JSON document on stdout (snake_case, stable)");
}

bool JsonRequested() { return json_requested; }

void Emit(bool as_json, const nlohmann::json& doc, const std::string& human) {
  if (as_json) return PrintJson(doc);
  std::cout << human << "\n";
}

void PrintJson(const nlohmann::json& j) { std::cout << j.dump(2) << "\n"; }

void PrintTable(const std::vector<std::string>& header,
                const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(header.size());
  for (size_t c = 0; c < header.size(); ++c) width[c] = header[c].size();
  for (const auto& row : rows) {
    for (size_t c = 0; c < row.size() && c < width.size(); ++c) {
      width[c] = std::max(width[c], row[c].size());
    }
  }
  auto print = [&](const std::vector<std::string>& cells) {
    std::string line;
    for (size_t c = 0; c < cells.size() && c < width.size(); ++c) {
      line += cells[c];
      if (c + 1 < cells.size()) line += std::string(width[c] - cells[c].size() + 2, ' ');
    }
    std::cout << line << "\n";
  };
  print(header);
  for (const auto& row : rows) print(row);
}

bool UseColour() { return isatty(STDOUT_FILENO) == 1 && std::getenv("NO_COLOR") == nullptr; }

namespace {

// 1234567 -> "1,234,567".
std::string Grouped(uint64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

}  // namespace

Progress::Progress(std::string what)
    : active_(isatty(STDERR_FILENO) == 1), what_(std::move(what)), start_(absl::Now()) {}

Progress::~Progress() {
  if (active_ && drawn_at_ != absl::InfinitePast()) std::cerr << "\r\033[K" << std::flush;
}

void Progress::Update(uint64_t done, uint64_t total) {
  const absl::Time now = absl::Now();
  if (!active_ || now - drawn_at_ < absl::Milliseconds(100)) return;
  drawn_at_ = now;
  std::string line = absl::StrCat(what_, "  ", Grouped(done));
  if (total > 0) absl::StrAppend(&line, "/", Grouped(total));
  absl::StrAppend(&line, " entries");
  const double seconds = absl::ToDoubleSeconds(now - start_);
  if (total > 0 && done <= total) absl::StrAppend(&line, "  ", done * 100 / total, "%");
  if (seconds > 0.2 && done > 0) {
    const double rate = static_cast<double>(done) / seconds;
    absl::StrAppend(&line, "  ", Grouped(static_cast<uint64_t>(rate)), "/s");
    if (total > done) {
      const auto left = static_cast<int64_t>(static_cast<double>(total - done) / rate) + 1;
      absl::StrAppend(&line, "  ", absl::FormatDuration(absl::Seconds(left)), " left");
    }
  }
  std::cerr << "\r" << line << "\033[K" << std::flush;
}

std::string Field(const nlohmann::json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || j[key].is_null()) return "-";
  return j[key].is_string() ? j[key].get<std::string>() : j[key].dump();
}

}  // namespace tw::cli
