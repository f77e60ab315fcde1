{
  "targets": [
    {
      "target_name": "cxrmask_native",
      "type": "none",
      "actions": [
        {
          "action_name": "cmake_js_compile",
          "inputs": ["CMakeLists.txt"],
          "outputs": ["build/Release/cxrmask_native.node"],
          "action": ["node", "node_modules/cmake-js/bin/cmake-js", "compile", "--out", "build/cmake", "--parallel", "2"],
          "message": "Delegating to the CMake build (CMakeLists.txt is the one build definition)"
        }
      ]
    }
  ]
}
