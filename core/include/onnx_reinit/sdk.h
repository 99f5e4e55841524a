// Everything a strategy plugin includes: one header for the whole SDK.
#pragma once

#include "onnx_reinit/gains.h"
#include "onnx_reinit/params.h"
#include "onnx_reinit/plugin.h"
#include "onnx_reinit/plugin_abi.h"
#include "onnx_reinit/rng.h"
#include "onnx_reinit/strategy.h"
#include "onnx_reinit/tensor_info.h"
