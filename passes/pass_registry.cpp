// The pass registry: every pass by name, in the order of the default pipeline (as data).
#include <fmt/format.h>

#include <algorithm>

#include "passes/autodiff.h"
#include "passes/fold_batchnorm.h"
#include "passes/fuse_shape.h"
#include "passes/pass.h"
#include "passes/training_forms.h"

namespace shoal {

const std::vector<PassRegistration>& passRegistry() {
  static const std::vector<PassRegistration> passes = {
      {"infer-shapes", &createInferShapesPass, false},            // types from the op table's shape rules
      {"canonicalize", &createCanonicalizePass, false},           // default attributes, identities removed
      {"training-forms", &createTrainingFormsPass, /*trainingOnly=*/true},  // batch statistics, dropout masks
      {"fold-constants", &createFoldConstantsPass, false},        // constant subgraphs evaluated at compile time
      {"autodiff", &createAutodiffPass, /*trainingOnly=*/true},   // loss, backward, optimizer updates
      {"fold-batchnorm", &createFoldBatchNormPass, false, /*inferenceOnly=*/true},  // batchnorm into conv/dense
      {"fuse-conv-activation", &createFuseConvActivationPass, false},   // conv2d + bias + activation -> fused_conv2d
      {"fuse-conv-pool", &createFuseConvPoolPass, false},               // fused_conv2d + maxpool2d -> fused_conv2d_pool
      {"fuse-pool-relu-grad", &createFusePoolReluGradPass, false},     // relu_grad(x, maxpool2d_grad(x, dy)) -> relu_mask
      {"fuse-dense-activation", &createFuseDenseActivationPass, false}, // dense + bias + activation -> fused_dense
      {"fuse-dense-pair", &createFuseDensePairPass, false},             // fused_dense -> dense -> fused_mlp
      {"fuse-transpose-matmul", &createFuseTransposeMatmulPass, false}, // transpose of the last two axes -> a GEMM flag
      {"fuse-elementwise", &createFuseElementwisePass, false},          // elementwise chains -> fused_elementwise
      {"fuse-conv-prologue", &createFuseConvProloguePass, false},      // one-operand chain -> fused_conv2d_pool's loads
      {"fuse-conv-epilogue", &createFuseConvEpiloguePass, false},      // conv2d -> elementwise program -> its stores
      {"dce", &createDeadCodeEliminationPass, false},             // unused values dropped
      {"schedule", &createSchedulePass, false},                   // execution order; updates last
  };
  return passes;
}

std::unique_ptr<Pass> createPass(std::string_view name) {
  for (const PassRegistration& r : passRegistry())
    if (r.name == name) return r.create();
  return nullptr;
}

std::vector<std::string> knownPassNames() {
  std::vector<std::string> out;
  for (const PassRegistration& r : passRegistry()) out.emplace_back(r.name);
  return out;
}

std::vector<std::string> passGroups() {
  std::vector<std::string> groups;
  for (const PassRegistration& r : passRegistry()) {
    std::string_view name = r.name;
    size_t dash = name.find('-');
    if (dash == std::string_view::npos) continue;
    std::string group(name.substr(0, dash));
    // A group is a prefix two or more passes share ("fuse"): "fold" alone is no group.
    int members = 0;
    for (const PassRegistration& o : passRegistry())
      if (o.name.size() > group.size() && o.name.substr(0, group.size()) == group && o.name[group.size()] == '-')
        ++members;
    if (members >= 2 && std::find(groups.begin(), groups.end(), group) == groups.end()) groups.push_back(group);
  }
  return groups;
}

bool isKnownPassSelector(std::string_view selector) {
  for (const std::string& n : knownPassNames())
    if (n == selector) return true;
  for (const std::string& g : passGroups())
    if (g == selector) return true;
  return false;
}

std::string unknownPassMessage(std::string_view selector) {
  return fmt::format("unknown pass '{}' (passes: {}; groups: {})", selector, fmt::join(knownPassNames(), ", "),
                     fmt::join(passGroups(), ", "));
}

}  // namespace shoal
