# layering.cmake - ctest cases that show the build enforces the layers (Note [layers] in
# CMakeLists.txt). Each case compiles a one-line file with a library's include path alone:
#   layering.<library>_sees_<header>      its own or a lower layer's header must compile;
#   layering.<library>_blind_to_<header>  a higher layer's header must fail, and fail
#                                         because the file is not there.
# And layering.no_upward_calls reads the built libraries' symbols: no library may call a
# function that only a library above it defines (tools/check_layer_links.py).
set(MILA_LAYERING_PROBES ${PROJECT_BINARY_DIR}/layering_probes)
file(MAKE_DIRECTORY ${MILA_LAYERING_PROBES})

function(mila_layering_probe library header expect)
  string(MAKE_C_IDENTIFIER "${library}_${expect}_${header}" id)
  set(probe ${MILA_LAYERING_PROBES}/${id}.cpp)
  file(WRITE ${probe} "#include \"${header}\"\n")
  string(MAKE_C_IDENTIFIER "${header}" header_id)
  set(test layering.${library}_${expect}_${header_id})
  add_test(NAME ${test} COMMAND ${CMAKE_CXX_COMPILER} -std=c++20 -fsyntax-only
                                -I${MILA_LAYER_DIR}/${library} ${probe})
  if(expect STREQUAL "blind_to")
    set_tests_properties(${test} PROPERTIES PASS_REGULAR_EXPRESSION "${header}: No such file or directory")
  endif()
endfunction()

# Every library sees its own layer (the positive control: the include folder works).
mila_layering_probe(mila_tensor   tensor/tensor.h        sees)
mila_layering_probe(mila_autograd autograd/function.h    sees)
mila_layering_probe(mila_ops_cpu  ops/cpu/gemm.h         sees)
mila_layering_probe(mila_ops      ops/ops.h              sees)
mila_layering_probe(mila_nn       nn/resnet.h            sees)
mila_layering_probe(mila_data     data/loader.h          sees)
mila_layering_probe(mila          mila/model.h           sees)

# And nothing above it.
mila_layering_probe(mila_tensor   autograd/node.h        blind_to)
mila_layering_probe(mila_tensor   ops/op_list.h          blind_to)
mila_layering_probe(mila_autograd ops/binary.h           blind_to)
mila_layering_probe(mila_autograd nn/module.h            blind_to)
mila_layering_probe(mila_ops_cpu  autograd/grad_mode.h   blind_to)
mila_layering_probe(mila_ops      nn/module.h            blind_to)
mila_layering_probe(mila_ops      data/image_io.h        blind_to)
mila_layering_probe(mila_ops      mila/config.h          blind_to)
mila_layering_probe(mila_nn       data/image_io.h        blind_to)
mila_layering_probe(mila_nn       mila/model.h           blind_to)
mila_layering_probe(mila_data     nn/module.h            blind_to)
mila_layering_probe(mila_data     mila/model.h           blind_to)

find_package(Python3 COMPONENTS Interpreter)
find_program(MILA_NM nm)
if(Python3_FOUND AND MILA_NM)
  get_property(layers GLOBAL PROPERTY MILA_LAYERS)
  set(specs "")
  foreach(layer ${layers})
    get_property(below GLOBAL PROPERTY MILA_BELOW_${layer})
    string(REPLACE ";" "," below "${below}")
    list(APPEND specs "${layer}:${below}")
  endforeach()
  add_test(NAME layering.no_upward_calls
           COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tools/check_layer_links.py ${PROJECT_BINARY_DIR} ${specs})
endif()
