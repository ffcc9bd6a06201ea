// The recovery codes page's Copy button: shown only when this script runs (the download link
// and selecting the list work without it). Copies one code a line, as the download has them.
(() => {
  const button = document.getElementById("copy-codes");
  const status = document.getElementById("copy-status");
  if (!button || !status || !navigator.clipboard) return;
  button.hidden = false;
  button.addEventListener("click", async () => {
    const codes = [...document.querySelectorAll(".recovery-code")].map((c) => c.textContent.trim());
    try {
      await navigator.clipboard.writeText(codes.join("\n") + "\n");
      status.textContent = "Copied " + codes.length + " codes.";
    } catch (e) {
      status.textContent = "Copying did not work here: select the list, or download the file.";
    }
  });
})();
