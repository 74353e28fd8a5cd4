// Every data call of the dashboard is an API call with the operator's token.

const KEY = "vigil.token";

export const token = {
  get: () => sessionStorage.getItem(KEY),
  set: (value) => sessionStorage.setItem(KEY, value),
  clear: () => sessionStorage.removeItem(KEY),
};

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** Nova's fault body ({"badRequest": {"message": ...}}) to its message. */
async function faultMessage(response) {
  try {
    const body = await response.json();
    const inner = body && Object.values(body)[0];
    if (inner && inner.message) return inner.message;
  } catch (_) { /* not JSON */ }
  return `${response.status} ${response.statusText}`;
}

let onUnauthorized = () => {};
export function whenUnauthorized(fn) { onUnauthorized = fn; }

/**
 * call("PUT", "/v2.1/os-services/<uuid>", {body, version: "2.53"}) -> parsed JSON (or null).
 * Throws ApiError with the API's own message.
 */
export async function call(method, path, { body, version, signal } = {}) {
  const headers = { "X-Auth-Token": token.get() || "", Accept: "application/json" };
  if (version) headers["OpenStack-API-Version"] = `compute ${version}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method, headers, signal, cache: "no-store",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401) {
    onUnauthorized();
    throw new ApiError(401, await faultMessage(response));
  }
  if (!response.ok) throw new ApiError(response.status, await faultMessage(response));
  if (response.status === 204) return null;
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

/** The caller's identity and every policy rule's verdict for it. */
export async function permissions() {
  return (await call("GET", "/v2.1/vigil/permissions")).permissions;
}
