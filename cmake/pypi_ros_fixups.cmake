# ROS 2 wheels from PyPI export `<pkg>__rosidl_generator_py` targets whose include directories point at
# the Python headers of the machine that built the wheels (/opt/python/...). CMake refuses imported
# targets with non-existent include paths, so point them at this interpreter's headers instead.
# Call ckd_fix_pypi_python_includes() after every find_package/rosidl call that imports targets.
# A real ROS 2 installation never needs this; it is only included with -DCKD_PYPI_ROS=ON.
find_package(Python3 REQUIRED COMPONENTS Interpreter Development.Module NumPy)

function(ckd_fix_pypi_python_includes)
  get_property(_targets DIRECTORY PROPERTY IMPORTED_TARGETS)
  foreach(_t IN LISTS _targets)
    if(_t MATCHES "__rosidl_generator_py$")
      get_target_property(_dirs ${_t} INTERFACE_INCLUDE_DIRECTORIES)
      if(_dirs)
        set(_fixed "")
        foreach(_d IN LISTS _dirs)
          if(NOT EXISTS "${_d}" AND _d MATCHES "numpy")
            list(APPEND _fixed ${Python3_NumPy_INCLUDE_DIRS})
          elseif(NOT EXISTS "${_d}" AND _d MATCHES "include/python3")
            list(APPEND _fixed ${Python3_INCLUDE_DIRS})
          else()
            list(APPEND _fixed "${_d}")
          endif()
        endforeach()
        list(REMOVE_DUPLICATES _fixed)
        set_target_properties(${_t} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_fixed}")
      endif()
    endif()
  endforeach()
endfunction()

