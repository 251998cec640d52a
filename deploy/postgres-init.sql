-- Run once by the postgres image on an empty volume (/docker-entrypoint-initdb.d), as
-- POSTGRES_USER connected to POSTGRES_DB (mlflow): the other two databases the team uses.
-- MLflow's users and permissions, apart from its runs:
CREATE DATABASE mlflow_auth;
-- Optuna studies (DLOPT_OPTUNA_STORAGE), shared by every search worker:
CREATE DATABASE optuna;
