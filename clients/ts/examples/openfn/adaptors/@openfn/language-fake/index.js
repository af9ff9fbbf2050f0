// A stand-in OpenFn adaptor: an operation whose request fails outside the job's own code,
// which OpenFn's runtime reports as an AdaptorError (severity fail).
export const request = (url) => async () => {
  const error = new Error(`GET ${url} failed with status 404`);
  error.code = "ERR_BAD_REQUEST";
  throw error;
};

export const fn = (f) => (state) => f(state);
