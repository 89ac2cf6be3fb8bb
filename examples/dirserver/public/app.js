// Ask the dynamic endpoint next to the static files for a greeting.
fetch("/api/hello")
  .then((response) => response.json())
  .then((data) => {
    document.getElementById("greeting").textContent =
      `hello ${data.hello} at ${new Date(data.time * 1000).toLocaleTimeString()}`;
  })
  .catch(() => {
    document.getElementById("greeting").textContent = "(no answer from /api/hello)";
  });
