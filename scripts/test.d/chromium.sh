# The browser SDK's end-to-end tests drive Debian's headless Chromium through playwright-core
# (Playwright's own browser download needs the internet).
need_apt chromium chromium
