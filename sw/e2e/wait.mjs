// Waits for a condition in the browser tests, bounded in time so that a broken build fails
// instead of hanging. `check` returns the value waited for, or a falsy one; `observe` (optional)
// says what was seen instead, for the failure message.
export async function until(check, what, { timeoutMs = 20_000, observe } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) {
      const seen = observe ? `; saw ${JSON.stringify(await observe())}` : '';
      throw new Error(`timed out waiting for ${what}${seen}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
