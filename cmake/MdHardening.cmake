# Release builds are hardened: fortified libc calls, stack protector, PIE and
# full RELRO. Debug builds keep every assertion and no optimisation.
set(CMAKE_POSITION_INDEPENDENT_CODE ON)
set(CMAKE_C_FLAGS_DEBUG "-O0 -g3")
set(CMAKE_C_FLAGS_RELWITHDEBINFO "-O2 -g -fno-omit-frame-pointer")
set(CMAKE_C_FLAGS_RELEASE "-O2 -g")
if(CMAKE_BUILD_TYPE MATCHES "^(Release|RelWithDebInfo)$" AND MD_SANITIZE STREQUAL "")
    add_compile_options(-D_FORTIFY_SOURCE=2 -fstack-protector-strong -fPIE)
    add_link_options(-pie -Wl,-z,relro,-z,now)
endif()
