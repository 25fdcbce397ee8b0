// The exported report's renderer: one classic script and one CSS file, which
// cairn/collab/export.py inlines into a self-contained HTML file.  Built after the app
// (`npm run build`), into the app's build folder.
import { defineConfig } from "vite";
import { fileURLToPath } from "node:url";

export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  build: {
    outDir: fileURLToPath(new URL("../src/cairn/server/ui/static/report", import.meta.url)),
    emptyOutDir: true,
    lib: {
      entry: fileURLToPath(new URL("./src/report-export.js", import.meta.url)),
      name: "CairnReport",
      formats: ["iife"],
      fileName: () => "report.js",
      cssFileName: "report",
    },
  },
});
