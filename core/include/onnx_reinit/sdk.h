// Everything a strategy plugin includes: one header for the whole SDK.
#pragma once

#include "onnx_reinit/sdk/gains.h"
#include "onnx_reinit/sdk/parallel.h"
#include "onnx_reinit/sdk/params.h"
#include "onnx_reinit/sdk/plugin.h"
#include "onnx_reinit/sdk/plugin_abi.h"
#include "onnx_reinit/sdk/rng.h"
#include "onnx_reinit/sdk/strategy.h"
#include "onnx_reinit/sdk/tensor_info.h"
