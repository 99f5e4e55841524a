// Internal: schema validation of user parameters, shared by the registry.
#pragma once

#include <vector>

#include "onnx_reinit/registry.h"

namespace onnx_reinit {

// Every parameter of `info`, in schema order, defaults filled in and the
// given values parsed and checked. Throws param_error.
std::vector<resolved_param> resolve_params(const strategy_info& info,
                                           const param_value_list& given);

}  // namespace onnx_reinit
