"""Image files to what the models take, shared by the service (a request's PNG and JPEG
files) and the jobs (the robustness report), so both make the same 28x28 of a file."""
