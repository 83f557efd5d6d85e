# Intel's multi-buffer P-256 (crypto_mb, from the Intel Cryptography Primitives Library) for the
# batched-encryption backend's differential test (tests/multibuffer.rs). Aviso loads it at run
# time and falls back to aws-lc-rs without it, so this is only needed where the CPU has AVX-512
# IFMA. Installed from PyPI's manylinux wheels into target/ipp-crypto/ (lib/libcrypto_mb.so.13
# and the compiler runtime it links against), only when it is not there yet. (PEP 668: the
# install goes to its own prefix, never into the system Python, so the override is safe.)
if ! grep -qw avx512ifma /proc/cpuinfo 2>/dev/null; then
  log "this CPU lacks AVX-512 IFMA: the multi-buffer tests (tests/multibuffer.rs) will skip, saying so"
elif [ ! -e target/ipp-crypto/lib/libcrypto_mb.so.13 ]; then
  log "installing ipp-crypto and intel-cmplr-lib-rt into target/ipp-crypto (multi-buffer P-256)"
  need_apt python3 python3 python3-pip
  python3 -m pip --version >/dev/null 2>&1 || need_apt __python3_pip__ python3-pip
  PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --quiet --disable-pip-version-check --no-deps --no-warn-script-location \
    --root-user-action=ignore --prefix "$PWD/target/ipp-crypto" ipp-crypto==2026.2.0 intel-cmplr-lib-rt==2026.2.0
fi
