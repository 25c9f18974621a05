// Loading pipelines: a Mermaid pipeline (.mmd) or IR text becomes a Pipeline (model graph +
// data, training and output settings).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "frontend/mermaid.h"
#include "ir/pipeline.h"

namespace shoal {

/// Reads and loads a pipeline file: `.mmd` (or any file that is not IR text) as a Mermaid
/// pipeline, IR text (`graph NAME {`) as a bare model graph. Every problem goes to `diags`
/// (clang-style, several per run); nullopt when there was any error.
std::optional<Pipeline> loadPipelineFile(const std::string& path, DiagnosticEngine& diags);
/// The same for text already in memory (`file` names it in diagnostics).
std::optional<Pipeline> loadPipelineText(std::string_view text, const std::string& file, DiagnosticEngine& diags);
/// Lowers a parsed Mermaid document: stages and layers become IR ops with shapes inferred.
std::optional<Pipeline> lowerDocument(const mermaid::Document& doc, DiagnosticEngine& diags);

/// The seed article's stage names (Chinese and English) and what each stands for.
struct StageAlias {
  std::string_view chinese;
  std::string_view english;
  std::string_view stage;  ///< input | preprocess | decision | place_gpu | place_cpu | conv_stage | matmul_stage | train | output
};
const std::vector<StageAlias>& stageAliases();

}  // namespace shoal
