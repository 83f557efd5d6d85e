// The console's calls to the Aviso API (same origin), with the key kept in sessionStorage only:
// it is gone when the tab closes. Every failure becomes an ApiError carrying the API's own
// problem document (`detail`, `field`), so that the page can show it where it belongs.

const KEY = 'aviso-console-key';

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `the server answered ${status}`);
    this.status = status;
    this.field = problem.field || null;
    this.problem = problem;
  }
}

/** Reads a problem document (or any error body) into {detail, field, title}. */
export function readProblem(status, text) {
  try {
    const body = JSON.parse(text);
    if (body && typeof body === 'object') {
      return { title: body.title, detail: typeof body.detail === 'string' ? body.detail : `the server answered ${status}`, field: typeof body.field === 'string' ? body.field : null };
    }
  } catch {
    // not JSON: fall through
  }
  return { detail: text.trim() || `the server answered ${status}`, field: null };
}

export const session = {
  key: () => sessionStorage.getItem(KEY),
  set: (key) => sessionStorage.setItem(KEY, key),
  clear: () => sessionStorage.removeItem(KEY),
};

/** `fetch` with the key; the parsed JSON answer (null when empty), or throws an ApiError. */
export async function call(method, path, body, { key = session.key(), signal } = {}) {
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: { Authorization: `Bearer ${key}`, ...(body !== undefined && { 'Content-Type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
    });
  } catch (error) {
    if (error.name === 'AbortError') throw error;
    throw new ApiError(0, { detail: `the server cannot be reached (${error.message})` });
  }
  const text = await response.text();
  if (!response.ok) throw new ApiError(response.status, readProblem(response.status, text));
  return text ? JSON.parse(text) : null;
}

export const api = {
  app: (key) => call('GET', '/v1/app', undefined, { key }),
  stats: () => call('GET', '/v1/subscribers/stats'),
  history: (query) => call('GET', `/v1/notifications/history?${new URLSearchParams(query)}`),
  notification: (id) => call('GET', `/v1/notifications/${encodeURIComponent(id)}`),
  create: (request) => call('POST', '/v1/notifications', request),
  cancel: (id) => call('POST', `/v1/notifications/${encodeURIComponent(id)}/cancel`),
  estimate: (audience) => call('POST', '/v1/audience/estimate', { audience }),
  profile: (id) => call('GET', `/v1/profiles/${encodeURIComponent(id)}`),
  erase: (id) => call('DELETE', `/v1/profiles/${encodeURIComponent(id)}`),
  updateApp: (id, changes) => call('PATCH', `/v1/admin/apps/${encodeURIComponent(id)}`, changes),
};
