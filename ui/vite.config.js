// The build lands inside the Python package, which serves it (src/cairn/server/ui).
import { defineConfig } from "vite";
import { fileURLToPath } from "node:url";

export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  base: "/",
  build: {
    outDir: fileURLToPath(new URL("../src/cairn/server/ui/static", import.meta.url)),
    emptyOutDir: true,
    chunkSizeWarningLimit: 400,
  },
  // `npm run dev` against a running `cairn server` (port 5000) for live editing.
  server: { proxy: { "/api": "http://127.0.0.1:5000" } },
});
