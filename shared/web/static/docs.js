// Swagger UI for Dockmaster's OpenAPI document. The function key comes from ?code= (the way /api/docs was
// always opened) or from the key the operators' page keeps for this tab; it goes, as a header, with every
// request the page makes. Signed in with App Service authentication, the session cookie does the rest.
"use strict";
(function () {
  const fromQuery = new URLSearchParams(window.location.search).get("code");
  const key = fromQuery || window.sessionStorage.getItem("dockmaster.functionKey");
  window.SwaggerUIBundle({
    url: "/api/openapi.json",
    dom_id: "#swagger-ui",
    requestInterceptor: (request) => {
      if (key && !request.headers["x-functions-key"]) {
        request.headers["x-functions-key"] = key;
      }
      return request;
    },
  });
})();
