// The Mermaid flowchart syntax layer: pipeline text -> a syntax tree of nodes and edges.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "support/diagnostics.h"

namespace shoal::mermaid {

/// The node shapes shoal accepts; the comment shows the Mermaid spelling.
enum class NodeShape {
  Rect,        ///< id[..]
  Round,       ///< id(..)
  Stadium,     ///< id([..])
  Circle,      ///< id((..))
  Decision,    ///< id{..}
  Subroutine,  ///< id[[..]]
  Cylinder,    ///< id[(..)]
  Hexagon,     ///< id{{..}}
};

/// "rect", "round", "stadium", "circle", "decision", "subroutine", "cylinder", "hexagon".
std::string_view nodeShapeName(NodeShape s);

/// One node: declared with a label somewhere (`id[label]`) or only referenced by bare id.
struct NodeDecl {
  std::string id;
  Location loc;  ///< of the id: the labelled declaration if there is one, else the first mention;
                 ///< loc.node is the id
  bool hasLabel = false;
  NodeShape shape = NodeShape::Rect;
  std::string label;  ///< the text without its quotes, entities (#quot; ...) decoded; trimmed if
                      ///< unquoted, kept as written if quoted
  Location labelLoc;  ///< of the first byte of the label text (columns past a decoded entity
                      ///< drift by the entity's length); labelLoc.node is the id
  bool quoted = false;
};

/// One data edge `from --> to`; a chain or `&` group expands to several.
struct Edge {
  std::string from, to;
  std::string label;  ///< `-->|label|` or `-- label -->`, trimmed; names the operand
  bool hasLabel = false;
  Location loc;  ///< of the arrow
  Location labelLoc;
};

/// `subgraph id[title] ... end`: kept for tools that want the grouping; nodes inside are ordinary
/// nodes of the graph.
struct Subgraph {
  std::string id;     ///< the first word after `subgraph` (may be empty)
  std::string title;  ///< the rest of the line, brackets/quotes included, as written
  Location loc;       ///< of the `subgraph` keyword
  std::vector<std::string> nodes;  ///< ids mentioned directly inside, each once, in order
};

/// A `%%` comment line: its text after the `%%`, untrimmed.
struct Comment {
  std::string text;
  Location loc;  ///< of the `%%`
};

/// The syntax tree of one pipeline file.
struct Document {
  std::string file;
  std::string kind;       ///< "graph" or "flowchart"
  std::string direction;  ///< TD TB BT LR RL; empty when the header names none
  std::vector<NodeDecl> nodes;  ///< one per id, in order of first appearance
  std::vector<Edge> edges;      ///< in source order
  std::vector<Subgraph> subgraphs;
  std::vector<Comment> comments;  ///< whole-line comments, in order (headers of exported IR graphs)

  /// The node with this id, or nullptr.
  const NodeDecl* findNode(std::string_view id) const;
};

/// Parses a pipeline file's text. Reports every syntax error it can find (recovering at the
/// next line) to diags; returns nullopt if any error was reported. Also registers `text` as the
/// source of `file` with diags so diagnostics quote the line. Grammar (line-oriented; a subset
/// of Mermaid's flowchart that Mermaid itself accepts, checked against mermaid@11):
///
///   file       := [front matter '---' ... '---'] (blank | '%%' comment line)* header line*
///   header     := ('graph' | 'flowchart') [TD|TB|BT|LR|RL] [';' statements]
///   line       := blank | '%%...' | 'subgraph' rest | 'end' | ignored | statements
///   ignored    := ('classDef'|'class'|'style'|'linkStyle'|'click'|'direction') ws rest
///               | ('accTitle'|'accDescr') ':' rest | 'accDescr' '{' ... '}'
///   statements := statement (';' statement)*        (a '%%' after a statement is an error)
///   statement  := group (arrow group)*              (chains; '&' fans make |lhs| x |rhs| edges)
///   group      := node (ws* '&' ws* node)*
///   node       := id [shape] [':::' class]          (no space between id and shape)
///   id         := (ASCII letter | digit | '_' | non-ASCII letter)+, not a Mermaid keyword
///   shape      := '[' L ']' | '(' L ')' | '([' L '])' | '((' L '))' | '{' L '}' | '[[' L ']]'
///               | '[(' L ')]' | '{{' L '}}'
///   L          := '"' any but '"' '"' | text without [](){}"|  (one line; not empty)
///   arrow      := ('-->' | '---' | '-.->' | '-.-' | '==>' | '===' | longer forms) ['|' E '|']
///               | '--' E '-->' | '--' E '---' | '-.' E '.->' | '==' E '==>' | '~~~' (no edge)
///   E          := '"' any but '"' '"' | text (pipe form: without [](){}"|)
///
/// Refused on purpose with a clear error: `--o`, `--x`, `<-->` edges; `(((`, `[/`, `[\` shapes;
/// a node redeclared with another label or shape; more than 1,000,000 edges. Input that is not
/// UTF-8 text (NUL and other control bytes, malformed sequences) is reported once and stops the
/// parse.
std::optional<Document> parse(std::string_view text, const std::string& file, DiagnosticEngine& diags);

/// Small UTF-8 helpers shared by the Mermaid and label parsers.
namespace text {

/// Byte offset of the first byte that makes `s` not plain UTF-8 text (a NUL or other control
/// byte except tab/LF/CR/FF, a malformed, overlong or surrogate sequence), or nullopt.
std::optional<size_t> findInvalidUtf8(std::string_view s);
/// Decodes the code point at s[i] (s must be valid UTF-8 at i); returns its length in bytes.
size_t decodeUtf8(std::string_view s, size_t i, char32_t& cp);
/// True for code points that may appear in a node id or an op name: ASCII letters, digits and
/// '_', and non-ASCII letters (CJK, Greek, accented Latin...); not punctuation, symbols or emoji.
bool isWordCodePoint(char32_t cp);
/// Length in bytes of the word (isWordCodePoint run) starting at s[i]; 0 if none.
size_t wordLength(std::string_view s, size_t i);
/// `tok` quoted for a message, cut to about 40 bytes on a code point boundary: 'abc...'.
std::string quoteToken(std::string_view tok);
/// Decodes Mermaid's entity codes: #quot; #amp; #lt; #gt; #apos; #nbsp; and decimal ones like
/// #35;. Unknown codes are kept as written.
std::string decodeEntities(std::string_view s);

}  // namespace text

}  // namespace shoal::mermaid
