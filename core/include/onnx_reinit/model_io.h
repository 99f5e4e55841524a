// Reading and writing ONNX models (docs/DESIGN.md section 1, ModelReader and
// ModelWriter), one concern per header; this one includes them all:
//   io/float16.h       16-bit float conversions
//   io/dtype.h         the data type table; a tensor's metadata from its proto
//   io/byte_source.h   a tensor's new bytes, produced on demand
//   io/loaded_model.h  a loaded model: proto, mapped data, pending writes
//   io/load.h          load_model, load_options
//   io/save.h          save_model, save_options, save_result
//   io/tensor_data.h   reading and writing a tensor's bytes and values
//   model_tensors.h    every tensor of a model that may hold weights
//   staged_file.h      small files published with the model
// For example:
//   loaded_model model = load_model("in.onnx");
//   for (const model_tensor& t : collect_model_tensors(model.proto()))
//     if (float_element_type(*t.proto)) write_tensor_values<float>(model, *t.proto, values);
//   save_model(model, "out.onnx");
#pragma once

#include "onnx_reinit/io/byte_source.h"
#include "onnx_reinit/io/dtype.h"
#include "onnx_reinit/io/float16.h"
#include "onnx_reinit/io/load.h"
#include "onnx_reinit/io/loaded_model.h"
#include "onnx_reinit/io/save.h"
#include "onnx_reinit/io/tensor_data.h"
#include "onnx_reinit/model_tensors.h"
#include "onnx_reinit/staged_file.h"
