// The node-label mini-language: `op: key=value key=value` -> op name plus typed arguments.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ir/attributes.h"
#include "support/diagnostics.h"

namespace shoal::mermaid {

/// One argument of a label: `key=value`, or a bare positional value (key empty), as in
/// `input: mnist path=...` or `{device: auto}`.
struct LabelArg {
  std::string key;  ///< empty for a positional value
  AttrValue value;
  Location loc;       ///< of the key (of the value for a positional one)
  Location valueLoc;  ///< of the first byte of the value
};

/// A parsed label.
struct ParsedLabel {
  std::string op;  ///< the first word: `conv2d`, `dense`, `数据输入`
  Location opLoc;
  std::vector<LabelArg> args;        ///< key=value arguments, in source order, keys unique
  std::vector<LabelArg> positional;  ///< bare values, in source order; which ops take them is
                                     ///< the lowering's business (it rejects the rest)

  /// The key=value argument with this key, or nullptr.
  const LabelArg* find(std::string_view key) const;
};

/// Parses label text that starts at `loc` (columns advance by bytes within the label; a newline
/// in the text moves to column 1 of the next line). Grammar:
///
///   label    := ws* op ws* [':' | '：'] (ws+ arg)* ws*
///   op       := word (ASCII letters, digits, '_', non-ASCII letters: `conv2d`, `数据输入`)
///   arg      := key ws* '=' ws* value | value
///   key      := [A-Za-z_][A-Za-z0-9_]*
///   value    := int `64` | float `0.001` `1e-3` `-2.5` | fraction `1/255` (a float)
///             | shape `3x3` `1x28x28` (ints) | list `1,2,3` (ints, or floats if any is a float)
///             | word `relu` `data/mnist-10k` (letters, digits, _ - . /; a string)
///             | word list `accuracy,loss` (kept as the string "accuracy,loss")
///             | quoted `"a b"` or `'a b'` (a string; \" \' \\ escapes)
///             | tensor `[[1,2],[3,4]]` `[1,2,3]` (a TensorLiteral, shape inferred)
///
/// Every error (malformed number, 1/0, ragged or too deeply nested tensor, duplicate key...) is
/// reported to diags with its exact column; returns nullopt if there was any.
std::optional<ParsedLabel> parseLabel(std::string_view text, Location loc, DiagnosticEngine& diags);

}  // namespace shoal::mermaid
