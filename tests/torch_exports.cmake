# torch_exports_test plans the checked-in PyTorch exports of tests/exports/torch/.
target_link_libraries(torch_exports_test PRIVATE onnx_reinit_plan nlohmann_json::nlohmann_json)
