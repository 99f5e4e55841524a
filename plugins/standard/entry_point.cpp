// The standard plugin's one exported symbol.
#include "onnx_reinit/sdk/plugin.h"
#include "standard_strategies.h"

ONNX_REINIT_PLUGIN(onnx_reinit::standard::plugin_id, onnx_reinit::standard::plugin_version,
                   onnx_reinit::standard::standard_strategies())
