// The 通报's print button (a file: the UI's CSP allows no inline script). The PDF is the browser's "save as PDF".
document.getElementById("print-bulletin")?.addEventListener("click", () => window.print());
