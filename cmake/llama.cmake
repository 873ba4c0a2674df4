# Defines the imported targets llama_llama, llama_ggml, llama_ggml_base, llama_common and the
# variables LLAMA_LIB_DIR, LLAMA_INCLUDE_DIRS, LLAMA_COMMON_INCLUDE_DIRS, LLAMA_VOCAB_DIR.
set(RESIDENT_LLAMA_DIR "" CACHE PATH
  "llama.cpp fetched by scripts/setup.sh (lib/ + src/); empty: use find_package(llama)")

if(RESIDENT_LLAMA_DIR)
  set(LLAMA_LIB_DIR ${RESIDENT_LLAMA_DIR}/lib)
  set(LLAMA_SRC_DIR ${RESIDENT_LLAMA_DIR}/src)
  set(LLAMA_INCLUDE_DIRS ${LLAMA_SRC_DIR}/include ${LLAMA_SRC_DIR}/ggml/include)
  set(LLAMA_COMMON_INCLUDE_DIRS ${LLAMA_SRC_DIR}/common ${LLAMA_SRC_DIR}/vendor ${LLAMA_INCLUDE_DIRS})
  set(LLAMA_VOCAB_DIR ${LLAMA_SRC_DIR}/models)
  foreach(pair "llama_llama:libllama.so" "llama_ggml:libggml.so" "llama_ggml_base:libggml-base.so"
                "llama_common:libllama-common.so")
    string(REPLACE ":" ";" pair ${pair})
    list(GET pair 0 tgt)
    list(GET pair 1 file)
    if(NOT EXISTS ${LLAMA_LIB_DIR}/${file})
      message(FATAL_ERROR "${LLAMA_LIB_DIR}/${file} is missing: run scripts/setup.sh")
    endif()
    add_library(${tgt} SHARED IMPORTED GLOBAL)
    set_target_properties(${tgt} PROPERTIES IMPORTED_LOCATION ${LLAMA_LIB_DIR}/${file}
      INTERFACE_SYSTEM_INCLUDE_DIRECTORIES "${LLAMA_INCLUDE_DIRS}"
      INTERFACE_INCLUDE_DIRECTORIES "${LLAMA_INCLUDE_DIRS}")
  endforeach()
else()
  # An installed llama.cpp (cmake --install of the same release, with LLAMA_BUILD_COMMON=ON).
  find_package(llama REQUIRED)
  find_package(ggml REQUIRED)
  add_library(llama_llama INTERFACE IMPORTED GLOBAL)
  target_link_libraries(llama_llama INTERFACE llama)
  add_library(llama_ggml INTERFACE IMPORTED GLOBAL)
  target_link_libraries(llama_ggml INTERFACE ggml::ggml)
  add_library(llama_ggml_base INTERFACE IMPORTED GLOBAL)
  target_link_libraries(llama_ggml_base INTERFACE ggml::ggml-base)
  find_library(LLAMA_COMMON_LIB NAMES llama-common common REQUIRED)
  add_library(llama_common UNKNOWN IMPORTED GLOBAL)
  set_target_properties(llama_common PROPERTIES IMPORTED_LOCATION ${LLAMA_COMMON_LIB})
  get_target_property(LLAMA_INCLUDE_DIRS llama INTERFACE_INCLUDE_DIRECTORIES)
  get_filename_component(LLAMA_LIB_DIR ${LLAMA_COMMON_LIB} DIRECTORY)
  set(LLAMA_SOURCE_DIR "" CACHE PATH "llama.cpp source tree for common/ headers and vocab models")
  set(LLAMA_COMMON_INCLUDE_DIRS ${LLAMA_SOURCE_DIR}/common ${LLAMA_SOURCE_DIR}/vendor ${LLAMA_INCLUDE_DIRS})
  set(LLAMA_VOCAB_DIR ${LLAMA_SOURCE_DIR}/models)
endif()
