// Taking a program's output apart: fields, lines, words, and whether a message names a value.
// Header-only, shared by the tests that read what ipcbench prints.
#pragma once

#include <cctype>
#include <sstream>
#include <string>
#include <vector>

namespace testproc {

// The pieces of `text` between the separators `sep` (a trailing separator adds no empty piece).
inline std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> out;
  std::string item;
  std::istringstream in(text);
  while (std::getline(in, item, sep)) out.push_back(item);
  return out;
}

// The non-empty lines of `text`.
inline std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  for (const std::string& line : split(text, '\n')) {
    if (!line.empty()) out.push_back(line);
  }
  return out;
}

// The whitespace-separated words of `line`.
inline std::vector<std::string> words_of(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

// Whether `value` occurs in `text` as a whole token: not run into letters or digits on either
// side (so "8" is found in "size '8' is too small" but not in "16-byte").
inline bool mentions(const std::string& text, const std::string& value) {
  for (std::size_t at = text.find(value); at != std::string::npos; at = text.find(value, at + 1)) {
    const bool left_ok = at == 0 || !std::isalnum(static_cast<unsigned char>(text[at - 1]));
    const std::size_t end = at + value.size();
    const bool right_ok =
        end == text.size() || !std::isalnum(static_cast<unsigned char>(text[end]));
    if (left_ok && right_ok) return true;
  }
  return false;
}

}  // namespace testproc
