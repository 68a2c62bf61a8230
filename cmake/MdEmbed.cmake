# md_embed_assets(<out-var> <files...>)
# Turns each text asset into a generated C file defining
#   const char md_asset_<name>[];  const unsigned long md_asset_<name>_len;
# where <name> is the file name made into a C identifier (openapi_json).
# The daemon serves these bytes directly (no copy, no file access at run time).
function(md_embed_assets out_var)
    set(generated "")
    foreach(asset ${ARGN})
        get_filename_component(name "${asset}" NAME)
        string(MAKE_C_IDENTIFIER "${name}" ident)
        set(out "${CMAKE_CURRENT_BINARY_DIR}/assets/asset_${ident}.c")
        add_custom_command(
            OUTPUT "${out}"
            COMMAND ${CMAKE_COMMAND} -DIN=${CMAKE_CURRENT_SOURCE_DIR}/${asset}
                    -DOUT=${out} -DIDENT=${ident}
                    -P ${CMAKE_CURRENT_SOURCE_DIR}/cmake/MdEmbedOne.cmake
            DEPENDS "${CMAKE_CURRENT_SOURCE_DIR}/${asset}"
                    "${CMAKE_CURRENT_SOURCE_DIR}/cmake/MdEmbedOne.cmake"
            COMMENT "Embedding ${asset}")
        list(APPEND generated "${out}")
    endforeach()
    set(${out_var} ${generated} PARENT_SCOPE)
endfunction()
