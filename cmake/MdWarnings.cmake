# One warning list for the whole project, each flag probed before use (the
# way curl's PickyWarnings.cmake gates flags by compiler).
include(CheckCCompilerFlag)

set(MD_WARNING_CANDIDATES
    -Wall -Wextra -Wpedantic -Wformat=2 -Wshadow -Wstrict-prototypes
    -Wmissing-prototypes -Wmissing-declarations -Wold-style-definition
    -Wpointer-arith -Wcast-qual -Wwrite-strings -Wundef -Wvla
    -Wredundant-decls -Wimplicit-fallthrough -Wconversion -Wno-sign-conversion
    -Wdouble-promotion -Werror=implicit-function-declaration
    -Wduplicated-cond -Wlogical-op -Wnull-dereference
    -Wcomma -Wconditional-uninitialized)

set(MD_WARNING_FLAGS "")
foreach(flag ${MD_WARNING_CANDIDATES})
    string(MAKE_C_IDENTIFIER "HAVE_WARN${flag}" var)
    check_c_compiler_flag(${flag} ${var})
    if(${var})
        list(APPEND MD_WARNING_FLAGS ${flag})
    endif()
endforeach()

function(md_apply_warnings target)
    target_compile_options(${target} PRIVATE ${MD_WARNING_FLAGS})
    if(MD_WERROR)
        target_compile_options(${target} PRIVATE -Werror)
    endif()
endfunction()
