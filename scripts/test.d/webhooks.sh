# The independent Standard Webhooks implementation that tests/webhooks.rs verifies every
# signature with: the `standardwebhooks` package from PyPI, in a venv under target/.
webhooks_venv=target/webhooks-venv
if [ ! -x "$webhooks_venv/bin/python" ] || ! "$webhooks_venv/bin/python" -c 'import standardwebhooks' 2>/dev/null; then
  python3 -m venv "$webhooks_venv"
  "$webhooks_venv/bin/pip" install --quiet --disable-pip-version-check 'standardwebhooks>=1,<2'
fi
