// The dataflow IR.
#include "ir/graph.h"

#include <unordered_set>

#include <algorithm>
#include <cassert>

namespace shoal {

std::string Node::describe() const {
  std::string who = !loc_.node.empty() ? loc_.node : (results_.empty() ? std::string() : results_[0]->name());
  std::string out(opName());
  if (!who.empty()) out += " '" + who + "'";
  return out;
}

std::string Graph::uniqueName(std::string_view base) const {
  std::string b = base.empty() ? std::string("v") : std::string(base);
  if (!byName_.count(b)) return b;
  for (int i = 1;; ++i) {
    std::string candidate = b + "." + std::to_string(i);
    if (!byName_.count(candidate)) return candidate;
  }
}

Node* Graph::createNode(OpKind kind, std::vector<Value*> inputs, Attrs attrs, std::vector<ResultSpec> results,
                        Location loc) {
  auto node = std::make_unique<Node>();
  node->kind_ = kind;
  node->inputs_ = std::move(inputs);
  node->attrs_ = std::move(attrs);
  node->loc_ = std::move(loc);
  for (size_t i = 0; i < results.size(); ++i) {
    auto v = std::make_unique<Value>();
    v->name_ = uniqueName(results[i].name);
    v->type_ = std::move(results[i].type);
    v->def_ = node.get();
    v->resultIndex_ = int(i);
    byName_[v->name_] = v.get();
    node->results_.push_back(std::move(v));
  }
  Node* raw = node.get();
  owned_.push_back(std::move(node));
  return raw;
}

Node* Graph::addNode(OpKind kind, std::vector<Value*> inputs, Attrs attrs, std::vector<ResultSpec> results,
                     Location loc) {
  Node* n = createNode(kind, std::move(inputs), std::move(attrs), std::move(results), std::move(loc));
  index_[n] = order_.size();
  order_.push_back(n);
  return n;
}

Node* Graph::insertNodeBefore(Node* pos, OpKind kind, std::vector<Value*> inputs, Attrs attrs,
                              std::vector<ResultSpec> results, Location loc) {
  Node* n = createNode(kind, std::move(inputs), std::move(attrs), std::move(results), std::move(loc));
  order_.insert(order_.begin() + ptrdiff_t(indexOf(pos)), n);
  reindex();
  return n;
}

void Graph::eraseNode(Node* node) {
  for (auto& r : node->results_) {
    assert(users(r.get()).empty() && "erasing a node whose results are still used");
    byName_.erase(r->name_);
  }
  order_.erase(order_.begin() + ptrdiff_t(indexOf(node)));
  owned_.erase(std::find_if(owned_.begin(), owned_.end(), [&](auto& p) { return p.get() == node; }));
  reindex();
}

void Graph::eraseNodes(const std::vector<Node*>& nodes) {
  std::unordered_set<const Node*> doomed(nodes.begin(), nodes.end());
#ifndef NDEBUG
  std::unordered_set<const Value*> results;
  for (Node* n : nodes)
    for (auto& r : n->results_) results.insert(r.get());
  for (Node* n : order_)
    if (!doomed.count(n))
      for (Value* in : n->inputs_) assert(!results.count(in) && "erasing a node whose results are still used");
#endif
  for (Node* n : nodes)
    for (auto& r : n->results_) byName_.erase(r->name_);
  std::erase_if(order_, [&](Node* n) { return doomed.count(n) != 0; });
  std::erase_if(owned_, [&](auto& p) { return doomed.count(p.get()) != 0; });
  reindex();
}

void Graph::replaceAllUsesWith(Value* from, Value* to) {
  for (Node* n : order_)
    for (Value*& in : n->inputs_)
      if (in == from) in = to;
}

std::string Graph::renameValue(Value* v, std::string_view name) {
  if (v->name_ == name) return v->name_;
  byName_.erase(v->name_);
  v->name_ = uniqueName(name);
  byName_[v->name_] = v;
  return v->name_;
}

size_t Graph::indexOf(const Node* node) const {
  auto it = index_.find(node);
  assert(it != index_.end() && "node is not in this graph");
  return it->second;
}

void Graph::setOrder(std::vector<Node*> order) {
  assert(order.size() == order_.size() && "new order must be a permutation");
  order_ = std::move(order);
  reindex();
}

void Graph::reindex() {
  index_.clear();
  for (size_t i = 0; i < order_.size(); ++i) index_[order_[i]] = i;
}

Value* Graph::findValue(std::string_view name) const {
  auto it = byName_.find(std::string(name));
  return it == byName_.end() ? nullptr : it->second;
}

std::vector<Node*> Graph::users(const Value* v) const {
  std::vector<Node*> out;
  for (Node* n : order_)
    for (Value* in : n->inputs_)
      if (in == v) out.push_back(n);
  return out;
}

std::vector<Node*> Graph::inputNodes() const {
  std::vector<Node*> out;
  for (Node* n : order_)
    if (n->kind() == OpKind::Input) out.push_back(n);
  return out;
}

std::vector<Node*> Graph::outputNodes() const {
  std::vector<Node*> out;
  for (Node* n : order_)
    if (n->kind() == OpKind::Output) out.push_back(n);
  return out;
}

Value* Graph::outputValue(std::string_view name) const {
  for (Node* n : outputNodes())
    if (n->attrs().has("name") && n->attrs().getString("name") == name) return n->input(0);
  return nullptr;
}

std::unique_ptr<Graph> Graph::clone() const {
  auto g = std::make_unique<Graph>(name_);
  std::unordered_map<const Value*, Value*> map;
  for (Node* n : order_) {
    std::vector<Value*> ins;
    for (Value* v : n->inputs_) {
      auto it = map.find(v);
      ins.push_back(it == map.end() ? nullptr : it->second);
    }
    std::vector<ResultSpec> rs;
    for (auto& r : n->results_) rs.push_back({r->name_, r->type_});
    Node* c = g->addNode(n->kind_, std::move(ins), n->attrs_, std::move(rs), n->loc_);
    for (size_t i = 0; i < n->results_.size(); ++i) map[n->results_[i].get()] = c->result(i);
  }
  g->parameterValues_ = parameterValues_;
  g->batchRebuilder_ = batchRebuilder_;
  return g;
}

const TensorMap& Graph::parameterValues() const {
  static const TensorMap kNone;
  return parameterValues_ ? *parameterValues_ : kNone;
}

void Graph::setParameterValue(const std::string& name, Tensor value) {
  if (!parameterValues_)
    parameterValues_ = std::make_shared<TensorMap>();
  else if (parameterValues_.use_count() > 1)
    parameterValues_ = std::make_shared<TensorMap>(*parameterValues_);
  (*parameterValues_)[name] = std::move(value);
}

void fillDefaultAttrs(Node& node) {
  for (const AttrSpec& spec : node.info().attrs)
    if (spec.defaultValue && !node.attrs().has(spec.name)) node.attrs().set(spec.name, *spec.defaultValue);
}

DType computeType(const Node& n) {
  if (n.numResults() == 1 && isFloat(n.result()->type().dtype) && n.attrs().has("dtype") &&
      !n.attrs().getString("dtype").empty())
    return n.result()->type().dtype;
  for (Value* v : n.inputs())
    if (v && isFloat(v->type().dtype)) return v->type().dtype;
  for (size_t i = 0; i < n.numResults(); ++i)
    if (isFloat(n.result(i)->type().dtype)) return n.result(i)->type().dtype;
  return DType::F32;
}

}  // namespace shoal
