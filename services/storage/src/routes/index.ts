import type { Operation } from '../http.js';
import { issueCredentials } from './credentials.js';
import { deleteFile, downloadFile, fileMeta, listFiles } from './files.js';
import { completeUpload, createUpload } from './uploads.js';

/** Every storage operation of the service (the meta routes are the app's). */
export const OPERATIONS: readonly Operation[] = [createUpload, completeUpload, listFiles, downloadFile, fileMeta, deleteFile, issueCredentials];
