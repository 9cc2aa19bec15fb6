# What `cmake --install` puts under the prefix, and the Debian package
# CPack makes of it:
#   bin/ipcbench                         the harness
#   bin/ipcbench-report                  launcher of the report tool (Debian's /usr/bin/python3)
#   share/ipcbench/python/ipcbench_report/   the report tool, its templates and result schema
#   share/doc/ipcbench/                  README, architecture
# Nothing else: the libraries are static and internal, the tests stay in the build.
include(GNUInstallDirs)

install(TARGETS ipcbench RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(PROGRAMS ${PROJECT_SOURCE_DIR}/reports/ipcbench-report
        DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/reports/ipcbench_report
        DESTINATION ${CMAKE_INSTALL_DATADIR}/ipcbench/python
        PATTERN "__pycache__" EXCLUDE
        PATTERN "*.pyc" EXCLUDE)
install(FILES ${PROJECT_SOURCE_DIR}/README.md ${PROJECT_SOURCE_DIR}/docs/architecture.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR})

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME ipcbench)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "Latency and throughput of Linux IPC mechanisms, with JSON results and reports")
set(CPACK_PACKAGE_CONTACT "ipcbench developers <ipcbench@invalid>")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # ipcbench_<version>_<arch>.deb
set(CPACK_DEBIAN_PACKAGE_SECTION utils)
# The shared libraries the binary links (libbenchmark, libzmq, libstdc++,
# libc) come from dpkg-shlibdeps; the report tool's Python modules are
# named here, since no tool can read them off a binary.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS
    "python3, python3-matplotlib, python3-jsonschema, python3-scipy, python3-jinja2")
set(CPACK_STRIP_FILES ON)
include(CPack)
